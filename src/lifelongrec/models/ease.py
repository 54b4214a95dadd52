"""(stub)"""
from lifelongrec.models._base import Recommender


class EASE(Recommender):
    name = "ease"
