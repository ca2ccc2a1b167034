"""Scoring a map against reference labels: labels on the scene grid (``labels``), confusion-matrix metrics
(``metrics``), plots and the report (``plots``, ``evaluate``).
"""
