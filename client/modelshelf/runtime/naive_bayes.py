"""Naive Bayes: GaussianNB, MultinomialNB, BernoulliNB, ComplementNB."""

from __future__ import annotations
