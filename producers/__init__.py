"""Events in: the synthetic generator, event encoders, the publisher and the score subscriber."""
