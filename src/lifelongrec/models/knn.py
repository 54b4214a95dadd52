"""(stub)"""
from lifelongrec.models._base import Recommender


class ItemKNN(Recommender):
    name = "itemknn"


class UserKNN(Recommender):
    name = "userknn"
