"""One module per page (Overview, Browse, Episode, Coverage, Mixtures); app/main.py routes to them."""
