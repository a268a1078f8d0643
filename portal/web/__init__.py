"""The web layer's shared pieces: htmx answers (:mod:`portal.web.htmx`)."""
