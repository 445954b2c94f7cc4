"""The paper's Hugging Face transformers models: VIP-LLaVA as the class-label extractor (CLE) and Grounding DINO as
the text-grounded gate detector. Each loads a local checkpoint directory in its Hugging Face format
(`save_pretrained`'s layout: config.json, *.safetensors, the processor's files); nothing is downloaded.

transformers and torch are imported only when a model is built (the `paper` extra installs them).
"""
