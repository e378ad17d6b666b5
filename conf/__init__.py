"""Configuration files of lakejobs (YAML), shipped as package data so every runner finds them."""
