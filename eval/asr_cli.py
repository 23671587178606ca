"""`harken eval asr` and `harken eval capacity`."""
