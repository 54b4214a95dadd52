"""The dashboard's files (package data): the page shell and each page's body (HTML),
one stylesheet and one script, served by :mod:`lifelongrec.serving.routers.dashboard`."""
