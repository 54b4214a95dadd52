"""(stub)"""
from lifelongrec.models._base import Recommender


class Popularity(Recommender):
    name = "popularity"
