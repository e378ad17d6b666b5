"""Serving layer: views that are right at every moment (batch result + what the stream merged since), and read-only queries."""
