"""(stub)"""
from lifelongrec.models._base import Recommender


class Hybrid(Recommender):
    name = "hybrid"
