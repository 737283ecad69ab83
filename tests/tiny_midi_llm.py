"""A tiny random Llama with MIDI-LLM's real vocabulary layout (128256 text ids + 55030 AMT ids) and a
word-level tokenizer with a begin-of-text token, saved like real weights: tests load it by path."""

from __future__ import annotations

from muse_cli.engines.midi_llm import PROMPT_PREFIX, TEXT_VOCAB_SIZE

WORDS = (PROMPT_PREFIX + "A beginner piano piece in C major at 80 BPM. jazz ballad with walking bass").split()


def make_tiny_model(path) -> None:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<|begin_of_text|>": 1}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", unk_token="<unk>")
    fast.save_pretrained(path)
    config = LlamaConfig(
        vocab_size=TEXT_VOCAB_SIZE + 55030, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=None, pad_token_id=None,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
