"""What producers, models, streaming and monitoring share, defined once.

- `spec`: the feature spec (which columns are the id, the time, the label, the features);
- `reasons`: the dead-letter reason codes;
- `formats`: the wire formats of events and scores;
- `bins`: the bin rule of the reference profile and the live drift window (numpy and Spark);
- `synthetic`: the synthetic transaction data set (its spec and generator), for training,
  demos and benchmarks.

The Avro contracts themselves are `schemas/*.avsc`. Nothing here imports the other packages.
"""
