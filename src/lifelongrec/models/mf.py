"""(stub)"""
from lifelongrec.models._base import Recommender


class ALS(Recommender):
    name = "als"


class BPR(Recommender):
    name = "bpr"
