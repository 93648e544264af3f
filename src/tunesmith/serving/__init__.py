"""Ship a customized model: export it (`export.py`: merged weights or the LoRA adapter, with a model card,
`card.py`), blend it back into its start (`blend.py`), check it by hand (`chat.py`: `chat`, `generate`), and
serve it over an OpenAI-compatible API (`server.py`).

Sits above training and evaluation (it reads their run folders and reuses their generation and model
resolution); nothing below imports it.
"""
