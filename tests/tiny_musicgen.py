"""Tiny, randomly initialised MusicGen checkpoints of the real architecture, for tests and benchmarks.

They are built from transformers' own config classes (T5 text encoder, EnCodec, MusicGen decoder),
saved with a tokenizer and a preprocessor config to a folder, and then loaded by path through the
engine's normal loading code, exactly like a downloaded checkpoint.

The EnCodec here runs at TINY_SR Hz with a hop of TINY_HOP samples, so the decoder produces
TINY_FRAME_RATE frames per second of audio: a 70 s clip is only 700 decoder steps.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY_SR = 640
TINY_HOP = 64  # upsampling ratios 8 x 8
TINY_FRAME_RATE = TINY_SR // TINY_HOP
TINY_CODEBOOK = 64  # 6 bits per code
WORDS = ["jazz", "piano", "drums", "calm", "rock", "guitar", "lofi", "beat", "ambient", "synth"]


def tiny_tokenizer():
    """A T5-like tokenizer (word level, appends </s>) wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in WORDS:
        vocab[word] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token="<unk>", model_max_length=64
    )


def _sub_configs(stereo: bool):
    from transformers import EncodecConfig, T5Config

    text = T5Config(
        vocab_size=16, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2,
        relative_attention_num_buckets=8, relative_attention_max_distance=16, pad_token_id=0, eos_token_id=1,
        decoder_start_token_id=0,
    )
    bits = 6
    bandwidth = 4 * TINY_FRAME_RATE * bits / 1000  # exactly 4 codebooks, like the 32 kHz EnCodec
    audio = EncodecConfig(
        sampling_rate=TINY_SR, audio_channels=1, num_filters=4, num_residual_layers=1, upsampling_ratios=[8, 8],
        codebook_size=TINY_CODEBOOK, codebook_dim=8, hidden_size=8, target_bandwidths=[bandwidth],
        num_lstm_layers=1, normalize=False, chunk_length_s=None, overlap=None, use_causal_conv=False,
        kernel_size=3, last_kernel_size=3, residual_kernel_size=3, compress=2,
    )
    return text, audio


def _decoder_kwargs(stereo: bool) -> dict:
    return {
        "vocab_size": TINY_CODEBOOK, "max_position_embeddings": 4096, "num_hidden_layers": 2, "ffn_dim": 64,
        "num_attention_heads": 2, "hidden_size": 32,
        "num_codebooks": 8 if stereo else 4, "audio_channels": 2 if stereo else 1,
        "pad_token_id": TINY_CODEBOOK, "bos_token_id": TINY_CODEBOOK, "dropout": 0.0,
    }


def _random_codebooks(model) -> None:
    # EnCodec codebooks start as zeros (they are learnt by k-means); random ones make codes audible.
    import torch

    for layer in model.audio_encoder.quantizer.layers:
        layer.codebook.embed.copy_(torch.randn_like(layer.codebook.embed))
        layer.codebook.embed_avg.copy_(layer.codebook.embed)


def _generation_config(model) -> None:
    g = model.generation_config
    g.decoder_start_token_id = TINY_CODEBOOK
    g.pad_token_id = TINY_CODEBOOK
    g.bos_token_id = TINY_CODEBOOK
    g.do_sample = True
    g.guidance_scale = 3.0
    g.top_k = 250
    g.max_length = 1500


def build_tiny_musicgen(folder: Path, *, stereo: bool = False, seed: int = 0) -> Path:
    """Save a tiny MusicgenForConditionalGeneration (+ tokenizer, EnCodec feature extractor) to `folder`."""
    import torch
    from transformers import (
        EncodecFeatureExtractor,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
    )

    torch.manual_seed(seed)
    text, audio = _sub_configs(stereo)
    decoder = MusicgenDecoderConfig(**_decoder_kwargs(stereo))
    config = MusicgenConfig(text_encoder=text, audio_encoder=audio, decoder=decoder)
    model = MusicgenForConditionalGeneration(config).eval()
    _random_codebooks(model)
    _generation_config(model)
    folder = Path(folder)
    model.save_pretrained(folder)
    extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=TINY_SR, padding_value=0.0)
    MusicgenProcessor(feature_extractor=extractor, tokenizer=tiny_tokenizer()).save_pretrained(folder)
    return folder


def build_tiny_musicgen_melody(folder: Path, *, seed: int = 0) -> Path:
    """Save a tiny MusicgenMelodyForConditionalGeneration with its chroma feature-extractor config.

    The melody processor class itself needs torchaudio, so its preprocessor config is written as
    the JSON the real checkpoints ship (the engine reads it and computes the chroma itself).
    """
    import torch
    from transformers import (
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
    )

    torch.manual_seed(seed)
    text, audio = _sub_configs(False)
    decoder = MusicgenMelodyDecoderConfig(**_decoder_kwargs(False))
    config = MusicgenMelodyConfig(
        text_encoder=text, audio_encoder=audio, decoder=decoder, num_chroma=12, chroma_length=30 * TINY_SR // 64
    )
    model = MusicgenMelodyForConditionalGeneration(config).eval()
    _random_codebooks(model)
    _generation_config(model)
    folder = Path(folder)
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    extractor = {
        "feature_extractor_type": "MusicgenMelodyFeatureExtractor",
        "feature_size": 12, "sampling_rate": TINY_SR, "hop_length": 64, "chunk_length": 30, "n_fft": 256,
        "num_chroma": 12, "padding_value": 0.0, "padding_side": "right", "return_attention_mask": False,
        "stem_indices": [3, 2], "processor_class": "MusicgenMelodyProcessor",
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(extractor, indent=2))
    return folder
