"""tamperlab: how much downstream modification does it take to strip a model's safeguards?"""

__version__ = "0.1.0"
