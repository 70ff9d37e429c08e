"""bettorsense: a Django app for Sportradar's Bettor Sense responsible-gaming API."""

__version__ = "0.1.0"
