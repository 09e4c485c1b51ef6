"""The evaluation report: ``report.html`` with its PNG figures beside it."""

from .html import write_report

__all__ = ["write_report"]
