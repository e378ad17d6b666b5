"""Machine learning: train, gate and register the recommender; score recommendations."""
