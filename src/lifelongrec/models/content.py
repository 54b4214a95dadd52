"""(stub)"""
from lifelongrec.models._base import Recommender


class ContentRecommender(Recommender):
    name = "content"
