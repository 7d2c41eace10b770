"""Export: a Hugging Face folder, GGUF files for llama.cpp, an Ollama Modelfile and a model card.

- :mod:`vinaforge.export.hf` — safetensors in bf16/fp16 with the tokenizer and chat template;
- :mod:`vinaforge.export.llamacpp` — llama.cpp's converter (from the llama-cpp-python sdist) and
  quantizer; :mod:`vinaforge.export._convert` runs the converter with correct token scores;
- :mod:`vinaforge.export.verify` — GGUF vs HF: token ids, 16 greedy tokens, metadata;
- :mod:`vinaforge.export.ollama` — the Modelfile; :mod:`vinaforge.export.card` — README.md;
- :mod:`vinaforge.export.export` — all of it in one folder; ``stage`` / ``cli`` — stage and command.
"""
