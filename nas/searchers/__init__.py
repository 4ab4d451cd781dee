"""Searchers: random, evolutionary (NSGA-II), hurricane (two-stage), registered by name."""

from __future__ import annotations

from hwprof.registry import SEARCHERS
from nas.searchers.base import Candidate, Constraint, SearchResult, Searcher


def create_searcher(name: str, **settings) -> Searcher:
    """A searcher by registry name (see ``nas searchers``)."""
    return SEARCHERS.create(name, **settings)


__all__ = ["Candidate", "Constraint", "SearchResult", "Searcher", "create_searcher"]
