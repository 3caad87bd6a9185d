"""Model loading: the embedded default model, local Hugging Face directories, GGUF files; chat formatting."""

from tamperlab.models.loading import LoadedModel, load_model, load_tokenizer

__all__ = ["LoadedModel", "load_model", "load_tokenizer"]
