"""Write the presets of current models into llmplan/models/presets.json, each built from its released config.json
through llmplan's own reader (llmplan.models.hf_config), so that a preset is exactly what reading its config gives.

    PYTHONPATH=. python benchmarks/make_presets.py          # rewrite the generated entries in presets.json

Configs come from tests/data/hf_configs (copied from the repository named in SOURCES.json and counted with
transformers in COUNTS.json), or, for models without a copy there, from the config values written below with the
hub repository they are published in. presets.json stays plain data: this script only writes it. Entries it does
not generate (the older, hand-written presets) are kept as they are, in their order; generated ones follow.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from llmplan.models.hf_config import spec_from_hf_config
from llmplan.models.params import count_params

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "tests" / "data" / "hf_configs"
TARGET = ROOT / "llmplan" / "models" / "presets.json"
GENERATED = "benchmarks/make_presets.py"


def _gemma3_text(hidden, layers, heads, kv, head_dim, ffn, vocab, window, context, scalar):
    return {"model_type": "gemma3_text", "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": head_dim, "intermediate_size": ffn,
            "vocab_size": vocab, "sliding_window": window, "max_position_embeddings": context,
            "query_pre_attn_scalar": scalar, "tie_word_embeddings": True}


def _gemma2(hidden, layers, heads, kv, head_dim, ffn):
    return {"model_type": "gemma2", "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv, "head_dim": head_dim, "intermediate_size": ffn, "vocab_size": 256000,
            "sliding_window": 4096, "max_position_embeddings": 8192, "tie_word_embeddings": True}


def _olmo2(hidden, layers, heads, kv, ffn):
    return {"model_type": "olmo2", "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": kv, "intermediate_size": ffn, "vocab_size": 100352,
            "max_position_embeddings": 4096, "tie_word_embeddings": False}


# Config values of models without a copy under tests/data/hf_configs: the hub repository's config.json
INLINE = {
    "gemma-3-1b": _gemma3_text(1152, 26, 4, 1, 256, 6912, 262144, 512, 32768, 256),
    "gemma-3-12b": {"model_type": "gemma3", "text_config": _gemma3_text(3840, 48, 16, 8, 256, 15360, 262208, 1024,
                                                                        131072, 256)},
    "gemma-3-27b": {"model_type": "gemma3", "text_config": _gemma3_text(5376, 62, 32, 16, 128, 21504, 262208, 1024,
                                                                        131072, 168)},
    "gemma-2-2b": _gemma2(2304, 26, 8, 4, 256, 9216),
    "gemma-2-27b": _gemma2(4608, 46, 32, 16, 128, 36864),
    "qwen2.5-72b": {"model_type": "qwen2", "hidden_size": 8192, "num_hidden_layers": 80, "num_attention_heads": 64,
                    "num_key_value_heads": 8, "intermediate_size": 29568, "vocab_size": 152064,
                    "max_position_embeddings": 131072, "tie_word_embeddings": False, "use_sliding_window": False},
    "mistral-small-3-24b": {"model_type": "mistral", "hidden_size": 5120, "num_hidden_layers": 40,
                            "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
                            "intermediate_size": 32768, "vocab_size": 131072, "max_position_embeddings": 32768,
                            "sliding_window": None, "tie_word_embeddings": False},
    "olmo-2-7b": _olmo2(4096, 32, 32, 32, 11008),
    "olmo-2-13b": _olmo2(5120, 40, 40, 40, 13824),
    "olmo-2-32b": _olmo2(5120, 64, 40, 8, 27648),
    "glm-4.5": {"model_type": "glm4_moe", "hidden_size": 5120, "num_hidden_layers": 92, "num_attention_heads": 96,
                "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 12288, "moe_intermediate_size": 1536,
                "n_routed_experts": 160, "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3,
                "vocab_size": 151552, "max_position_embeddings": 131072, "attention_bias": True,
                "use_qk_norm": True, "num_nextn_predict_layers": 1, "tie_word_embeddings": False},
    "glm-4.5-air": {"model_type": "glm4_moe", "hidden_size": 4096, "num_hidden_layers": 46,
                    "num_attention_heads": 96, "num_key_value_heads": 8, "head_dim": 128,
                    "intermediate_size": 10944, "moe_intermediate_size": 1408, "n_routed_experts": 128,
                    "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 1, "vocab_size": 151552,
                    "max_position_embeddings": 131072, "attention_bias": True, "use_qk_norm": False,
                    "num_nextn_predict_layers": 1, "tie_word_embeddings": False},
}

# name, aliases, family, config (folder under tests/data/hf_configs, or INLINE key), source text, published total as
# printed, published active as printed (MoE), what that active count includes
P = [
    # older presets whose configs put sliding windows in effect: built from the config so the cache follows it
    ("mistral-7b", ["mistral-7b-v0.1", "mistral"], "Mistral", "Mistral-7B-v0.1",
     "Jiang et al. 2023, Mistral 7B, Table 1 (dim 4096, 32 layers, head_dim 128, hidden_dim 14336, 32 heads, 8 kv "
     "heads, window 4096, vocab 32000); context 32768 and sliding_window 4096 as in the released config "
     "mistralai/Mistral-7B-v0.1; count as transformers instantiates that config", "7,241,732,096", None, None),
    ("phi-3-mini", ["phi-3-mini-4k", "phi-3-mini-4k-instruct"], "Phi-3", "Phi-3-mini-4k-instruct",
     "Abdin et al. 2024, Phi-3 Technical Report, Section 2 (3.8B parameters, hidden 3072, 32 heads, 32 layers, "
     "vocabulary 32064); ffn 8192, context 4096 and sliding_window 2047 from the released config "
     "microsoft/Phi-3-mini-4k-instruct; count as transformers instantiates that config", "3,821,079,552", None,
     None),
    ("gemma-2-9b", ["gemma2-9b"], "Gemma", "gemma-2-9b",
     "Gemma Team 2024, Gemma 2: Improving Open Language Models at a Practical Size, Table 1 (d_model 3584, 42 "
     "layers, feedforward 28672 = 2 x 14336 gated, 16 heads, 8 kv heads, head size 256, local window 4096 on "
     "every other layer); four RMSNorms per layer, vocabulary 256000 and tied embeddings from the released config "
     "google/gemma-2-9b; count as transformers instantiates it", "9,241,705,984", None, None),
    ("deepseek-v3", ["deepseek-v3-671b"], "DeepSeek", "DeepSeek-V3",
     "DeepSeek-AI 2024, DeepSeek-V3 Technical Report (671B total, 37B activated per token; the released 685B adds "
     "the 14B multi-token-prediction module and the fp8 block scales)", "671B", "37B", "all"),
    ("deepseek-r1", ["deepseek-r1-671b"], "DeepSeek", "DeepSeek-R1",
     "DeepSeek-AI 2025, DeepSeek-R1 (the DeepSeek-V3 architecture: 671B total, 37B activated)", "671B", "37B", "all"),
    ("deepseek-v4-flash", ["deepseek-v4-flash-base"], "DeepSeek", "DeepSeek-V4-Flash",
     "DeepSeek-AI 2026, deepseek-ai/DeepSeek-V4-Flash model card (284B parameters, 13B activated; 1M context); its "
     "config.json as xiaowanCN/aiconfigurator vendors it. The card truncates 13.80B activated; the MTP module "
     "(6.61B) is counted apart", "284B", "13B", "all"),
    ("deepseek-v4-pro", ["deepseek-v4-pro-base"], "DeepSeek", "DeepSeek-V4-Pro",
     "DeepSeek-AI 2026, deepseek-ai/DeepSeek-V4-Pro model card (1.6T parameters, 49B activated; 1M context); its "
     "config.json as xiaowanCN/aiconfigurator vendors it. The card truncates 49.78B activated; the MTP module "
     "(25.84B) is counted apart", "1.6T", "49B", "all"),
    ("kimi-k2", ["kimi-k2-instruct", "kimi-k2-base"], "Kimi", "Kimi-K2-Instruct",
     "Moonshot AI 2025, Kimi K2 (1 trillion total parameters, 32 billion activated; DeepSeek-V3 architecture with "
     "384 experts and 64 heads; 32.86B activated, the card truncates)", "1T", "32B", "all"),
    ("qwen2.5-7b", ["qwen2.5-7b-instruct"], "Qwen2.5", "Qwen2.5-7B",
     "Qwen/Qwen2.5-7B model card (Number of Parameters: 7.61B; Non-Embedding: 6.53B)", "7.61B", None, None),
    ("qwen2.5-72b", ["qwen2.5-72b-instruct"], "Qwen2.5", "qwen2.5-72b",
     "Qwen/Qwen2.5-72B config.json (hidden 8192, 80 layers, 64/8 heads, intermediate 29568, vocab 152064) and "
     "model card (72.7B; its non-embedding 70.0B disagrees with the shape's 70.2B)", "72.7B", None, None),
    ("qwen3-0.6b", [], "Qwen3", "Qwen3-0.6B", "Qwen/Qwen3-0.6B model card (0.6B; 0.44B non-embedding)", "0.6B",
     None, None),
    ("qwen3-1.7b", [], "Qwen3", "Qwen3-1.7B", "Qwen/Qwen3-1.7B model card (1.7B; 1.4B non-embedding)", "1.7B",
     None, None),
    ("qwen3-4b", [], "Qwen3", "Qwen3-4B", "Qwen/Qwen3-4B model card (4.0B; 3.6B non-embedding)", "4.0B", None,
     None),
    ("qwen3-8b", [], "Qwen3", "Qwen3-8B", "Qwen/Qwen3-8B model card (8.2B; 6.95B non-embedding)", "8.2B", None,
     None),
    ("qwen3-14b", [], "Qwen3", "Qwen3-14B", "Qwen/Qwen3-14B model card (14.8B; 13.2B non-embedding)", "14.8B", None,
     None),
    ("qwen3-32b", [], "Qwen3", "Qwen3-32B", "Qwen/Qwen3-32B model card (32.8B; 31.2B non-embedding)", "32.8B", None,
     None),
    ("qwen3-30b-a3b", [], "Qwen3", "Qwen3-30B-A3B",
     "Qwen/Qwen3-30B-A3B model card (30.5B total, 3.3B activated)", "30.5B", "3.3B", "all"),
    ("qwen3-235b-a22b", [], "Qwen3", "Qwen3-235B-A22B",
     "Qwen/Qwen3-235B-A22B model card (235B total, 22B activated)", "235B", "22B", "all"),
    ("qwen3-coder-480b-a35b", ["qwen3-coder-480b-a35b-instruct"], "Qwen3", "Qwen3-Coder-480B-A35B-Instruct",
     "Qwen/Qwen3-Coder-480B-A35B-Instruct model card (480B total, 35B activated)", "480B", "35B", "all"),
    ("qwen3-next-80b-a3b", ["qwen3-next-80b-a3b-instruct", "qwen3-next-80b-a3b-thinking"], "Qwen3",
     "Qwen3-Next-80B-A3B-Thinking", "Qwen/Qwen3-Next-80B-A3B model card (80B total, 3B activated)", "80B", "3B",
     "no embeddings or head"),
    ("llama-3.1-70b", ["meta-llama-3.1-70b"], "Llama 3", "Llama-3.1-70B",
     "Dubey et al. 2024, The Llama 3 Herd of Models, Table 3 (70B); meta-llama/Llama-3.1-70B config.json", "70B",
     None, None),
    ("llama-3.2-1b", ["llama-3.2-1b-instruct"], "Llama 3", "Llama-3.2-1B-Instruct",
     "meta-llama/Llama-3.2-1B model card (1.23B parameters, tied embeddings)", "1.23B", None, None),
    ("llama-3.2-3b", ["llama-3.2-3b-instruct"], "Llama 3", "Llama-3.2-3B",
     "meta-llama/Llama-3.2-3B model card (3.21B parameters, tied embeddings)", "3.21B", None, None),
    ("llama-3.3-70b", ["llama-3.3-70b-instruct"], "Llama 3", "Llama-3.3-70B-Instruct",
     "meta-llama/Llama-3.3-70B-Instruct model card (70B; the Llama 3.1 70B architecture)", "70B", None, None),
    ("llama-4-scout", ["llama-4-scout-17b-16e", "llama-4-scout-17b-16e-instruct"], "Llama 4",
     "Llama-4-Scout-17B-16E-Instruct",
     "meta-llama/Llama-4-Scout-17B-16E model card (109B total with the vision encoder, 17B activated); the text "
     "model is planned", "109B", "17B", "all"),
    ("llama-4-maverick", ["llama-4-maverick-17b-128e", "llama-4-maverick-17b-128e-instruct"], "Llama 4",
     "Llama-4-Maverick-17B-128E-Instruct",
     "meta-llama/Llama-4-Maverick-17B-128E model card (400B total, 17B activated); the text model is planned",
     "400B", "17B", "all"),
    ("gpt-oss-20b", [], "gpt-oss", "gpt-oss-20b",
     "OpenAI 2025, gpt-oss-120b & gpt-oss-20b model card, Table 1 (20.91B total, 3.61B active: the unembedding "
     "counted, the embedding not)", "20.91B", "3.61B", "no input embedding"),
    ("gpt-oss-120b", [], "gpt-oss", "gpt-oss-120b",
     "OpenAI 2025, gpt-oss-120b & gpt-oss-20b model card, Table 1 (116.83B total, 5.13B active: the unembedding "
     "counted, the embedding not)", "116.83B", "5.13B", "no input embedding"),
    ("gemma-2-2b", [], "Gemma", "gemma-2-2b",
     "Gemma Team 2024, Gemma 2 (Table 1: d_model 2304, 26 layers, 8 heads, 4 KV heads, head size 256, "
     "feedforward 2 x 9216, window 4096) and Table 2 (590,118,912 embedding + 2,024,517,888 non-embedding "
     "parameters; the embedding count uses the 256,128-row padded vocabulary, the released config 256,000 rows)",
     "2.61B", None, None),
    ("gemma-2-27b", [], "Gemma", "gemma-2-27b",
     "Gemma Team 2024, Gemma 2 (Table 1: d_model 4608, 46 layers, 32 heads, 16 KV heads, head size 128, "
     "feedforward 2 x 36864, window 4096) and Table 2 (1,180,237,824 embedding + 26,047,480,320 non-embedding; "
     "the embedding count uses the 256,128-row padded vocabulary)", "27.23B", None, None),
    ("gemma-3-1b", ["gemma-3-1b-it", "gemma-3-1b-pt"], "Gemma", "gemma-3-1b",
     "Gemma Team 2025, Gemma 3 Technical Report, Table 1 (1B: 302M embedding + 698M non-embedding); "
     "google/gemma-3-1b-pt config.json", "1.00B", None, None),
    ("gemma-3-4b", ["gemma-3-4b-it", "gemma-3-4b-pt"], "Gemma", "gemma-3-4b-it",
     "Gemma Team 2025, Gemma 3 Technical Report, Table 1 (4B: 3,209M non-embedding + 675M embedding + 417M vision); "
     "the text model is planned", "3.88B", None, None),
    ("gemma-3-12b", ["gemma-3-12b-it", "gemma-3-12b-pt"], "Gemma", "gemma-3-12b",
     "Gemma Team 2025, Gemma 3 Technical Report, Table 1 (12B: 10,759M non-embedding + 1,012M embedding + 417M "
     "vision); google/gemma-3-12b-pt config.json; the text model is planned. The report's embedding count "
     "exceeds the 262,208-row vocabulary's 1,007M", "11.8B", None, None),
    ("gemma-3-27b", ["gemma-3-27b-it", "gemma-3-27b-pt"], "Gemma", "gemma-3-27b",
     "Gemma Team 2025, Gemma 3 Technical Report, Table 1 (27B: 25,600M non-embedding + 1,416M embedding + 417M "
     "vision); google/gemma-3-27b-pt config.json; the text model is planned. The report's embedding count "
     "exceeds the 262,208-row vocabulary's 1,410M", "27.0B", None, None),
    ("gemma-4-26b-a4b", ["gemma-4-26b-a4b-it"], "Gemma", "gemma-4-26B-A4B",
     "google/gemma-4-26B-A4B (26B total with the vision tower, 4B active, as its name states); config as ai-dynamo/aiconfigurator vendors "
     "it; the text model is planned", "26B", "4B", "all"),
    ("gemma-4-31b", ["gemma-4-31b-it"], "Gemma", "Gemma-4-31B-IT-NVFP4",
     "google/gemma-4-31B-it (31B, as its name states); config of nvidia/Gemma-4-31B-IT-NVFP4 as "
     "ai-dynamo/aiconfigurator vendors it (NVFP4 weights: modelopt, not read); the text model is planned", "31B",
     None, None),
    ("mistral-small-3-24b", ["mistral-small-24b", "mistral-small-24b-base-2501", "mistral-small-3"], "Mistral",
     "mistral-small-3-24b",
     "mistralai/Mistral-Small-24B-Base-2501 config.json and model card (24B parameters)", "24B", None, None),
    ("mistral-nemo-12b", ["mistral-nemo", "mistral-nemo-base-2407", "mistral-nemo-instruct-2407"], "Mistral",
     "Mistral-Nemo-Base-2407", "mistralai/Mistral-Nemo-Base-2407 config.json and model card (12B)", "12B", None,
     None),
    ("mixtral-8x22b", ["mixtral-8x22b-v0.1"], "Mistral", "Mixtral-8x22B-v0.1",
     "Mistral AI 2024, Mixtral 8x22B announcement (141B total, 39B active)", "141B", "39B", "all"),
    ("phi-4", ["phi4"], "Phi", "phi-4",
     "Abdin et al. 2024, Phi-4 Technical Report (a 14-billion parameter model; the released shape holds 14.66B)",
     "14B", None, None),
    ("olmo-2-7b", ["olmo-2-1124-7b"], "OLMo", "olmo-2-7b",
     "OLMo Team 2024, 2 OLMo 2 Furious (7B: 32 layers, d 4096, 32 heads, MLP 11008, vocabulary 100,352 as in "
     "the 13B config); 7B", "7B", None, None),
    ("olmo-2-13b", ["olmo-2-1124-13b"], "OLMo", "olmo-2-13b",
     "allenai/OLMo-2-1124-13B config.json and its model.safetensors.index.json (total_size 54,864,793,600 bytes "
     "of float32: 13,716,198,400 parameters), copied in mauer4/Attention-From-Scratch", "13,716,198,400", None,
     None),
    ("olmo-2-32b", ["olmo-2-0325-32b"], "OLMo", "olmo-2-32b",
     "OLMo Team 2025, OLMo 2 32B (64 layers, d 5120, 40 heads, 8 KV heads, MLP 27648); 32B", "32B", None,
     None),
    ("olmo-3-32b", ["olmo-3.1-32b", "olmo-3.1-32b-instruct", "olmo-3-32b-think"], "OLMo", "Olmo-3.1-32B-Instruct",
     "allenai/Olmo-3.1-32B-Instruct config.json (3 sliding-window layers to 1 full); 32B", "32B", None, None),
    ("glm-4.5", ["glm-4.5-355b-a32b"], "GLM", "glm-4.5",
     "Zhipu AI 2025, GLM-4.5 (355B total, 32B activated); shape as zyzshishui/slime scripts/models/"
     "glm4.5-355B-A32B.sh sets it (92 layers, 3 dense, 160 experts of 1536, q/k/v bias, q/k norm) and one MTP "
     "layer. The 355B lies between the count without MTP (352.8B) and with it (358.3B)", "355B", "32B",
     "no embeddings or head"),
    ("glm-4.5-air", ["glm-4.5-air-106b-a12b"], "GLM", "glm-4.5-air",
     "Zhipu AI 2025, GLM-4.5 (Air: 106B total, 12B activated); shape as zyzshishui/slime sets it for "
     "glm4.5-106B-A12B (46 layers, 1 dense, 128 experts of 1408, q/k/v bias) and one MTP layer. The 106B is "
     "below the count without MTP (106.9B)", "106B", "12B", "no embeddings or head"),
    ("glm-4.7", ["glm-4.7-fp8"], "GLM", "GLM-4.7-FP8-trimmed",
     "zai-org/GLM-4.7 as ai-dynamo/aiconfigurator vendors its config (GLM-4.5 shape; the vendored copy omits "
     "attention_bias, use_qk_norm and the MTP layer); 355B as GLM-4.5", "355B", "32B", "no embeddings or head"),
    ("nemotron-h-56b", ["nemotron-h-56b-base-8k"], "Nemotron", "Nemotron-H-56B-Base-8K",
     "NVIDIA 2025, Nemotron-H (56B: 54 Mamba-2, 10 attention, 54 MLP layers); nvidia/Nemotron-H-56B-Base-8K "
     "config.json", "56B", None, None),
]


# published counts beside the total: non-embedding (total less input embedding and output head) as printed
NON_EMBEDDING = {"gemma-2-2b": "2,024,517,888", "gemma-2-27b": "26,047,480,320", "gemma-3-1b": "698M",
                 "gemma-3-4b": "3,209M", "gemma-3-12b": "10,759M", "gemma-3-27b": "25,600M", "qwen2.5-7b": "6.53B",
                 "qwen3-0.6b": "0.44B", "qwen3-1.7b": "1.4B", "qwen3-4b": "3.6B", "qwen3-8b": "6.95B",
                 "qwen3-14b": "13.2B", "qwen3-32b": "31.2B"}

# older models that published tables still use, without a reader of their own (GPT-J) or a config copy (Falcon)
EXTRA = [
    {"name": "gpt-j-6b", "aliases": ["gpt-j", "gptj-6b"], "family": "GPT-J",
     "source": "EleutherAI GPT-J-6B model card (n_layers 28, d_model 4096, d_ff 16384, 16 heads of 256, rotary on "
               "64 dims, n_ctx 2048, vocabulary 50257 padded to 50400; attention and MLP in parallel after one "
               "LayerNorm; biased MLP and output head). The card's n_parameters 6,053,381,344 exceeds what "
               "transformers' GPTJForCausalLM holds for that shape (6,050,882,784) by 2,498,560",
     "published_as": "6,053,381,344",
     "spec": {"arch": "decoder", "layers": 28, "hidden": 4096, "heads": 16, "ffn": 16384, "vocab": 50400,
              "context": 2048, "position": "rotary", "tied_embeddings": False, "qkv_bias": False, "out_bias": False,
              "mlp_bias": True, "lm_head_bias": True, "norm": "layernorm", "norms_per_layer": 1,
              "parallel_layers": True, "activation": "gelu_new"}},
    {"name": "falcon-180b", "aliases": ["falcon-180b-base"], "family": "Falcon", "config": {
        "model_type": "falcon", "hidden_size": 14848, "num_hidden_layers": 80, "num_attention_heads": 232,
        "num_kv_heads": 8, "vocab_size": 65024, "new_decoder_architecture": True, "parallel_attn": True,
        "bias": False, "alibi": False, "max_position_embeddings": 2048},
     "source": "Almazrouei et al. 2023, The Falcon Series of Open Language Models (180B: 80 layers, d_model 14848, "
               "232 heads of 64, 8 KV groups, vocabulary 65,024, parallel attention and MLP); FalconConfig ties "
               "the head (the count 178.6B is transformers' FalconForCausalLM for that shape); 180B is nominal",
     "published_as": "180B"},
]


def read(config: str) -> dict:
    if config in INLINE:
        return INLINE[config]
    return json.loads((CONFIGS / config / "config.json").read_text())


def entry(name, aliases, family, config, source, published, active, active_counts) -> dict:
    spec = spec_from_hf_config(read(config), name)
    data = spec.shape_dict()
    if spec.assumptions:
        data["assumptions"] = list(spec.assumptions)
    out = {"name": name, "aliases": aliases, "family": family, "source": source,
           "published_params": _value(published), "published_as": published}
    if active:
        out.update(published_active_as=active, published_active_counts=active_counts)
    if name in NON_EMBEDDING:
        out["published_non_embedding_as"] = NON_EMBEDDING[name]
    out.update(config=config if config not in INLINE else "inline in benchmarks/make_presets.py",
               generated_by=GENERATED, spec=data)
    b = count_params(spec)
    print(f"{name:24s} {b.total / 1e9:10.3f}B  active {b.active / 1e9:8.3f}B  published {published} {active or ''}")
    return out


def extra(e: dict) -> dict:
    if "config" in e:
        data = spec_from_hf_config(e["config"], e["name"]).shape_dict()
        config = "inline in benchmarks/make_presets.py"
    else:
        data, config = e["spec"], "none: the shape from the source"
    return {"name": e["name"], "aliases": e["aliases"], "family": e["family"], "source": e["source"],
            "published_params": _value(e["published_as"]), "published_as": e["published_as"], "config": config,
            "generated_by": GENERATED, "spec": data}


def _value(printed: str) -> int:
    printed = printed.replace(",", "")
    if printed.isdigit():
        return int(printed)
    scale = {"T": 10**12, "B": 10**9, "M": 10**6}[printed[-1]]
    whole, _, frac = printed[:-1].partition(".")
    return int(whole) * scale + (int(frac) * scale // 10 ** len(frac) if frac else 0)


def main() -> int:
    data = json.loads(TARGET.read_text())
    kept = [e for e in data["presets"] if e.get("generated_by") != GENERATED]
    names = {e["name"] for e in kept}
    new = [entry(*row) for row in P if row[0] not in names] + [extra(e) for e in EXTRA if e["name"] not in names]
    data["presets"] = kept + new
    with tempfile.NamedTemporaryFile("w", dir=TARGET.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(_dump(data))
    os.replace(tmp.name, TARGET)
    print(f"wrote {TARGET}: {len(kept)} kept, {len(new)} generated")
    return 0


def _dump(data: dict) -> str:
    """The file's layout: one preset per block, its spec on as few lines as JSON allows."""
    lines = ['{', '  "schema_version": 1,', '  "presets": [']
    for i, e in enumerate(data["presets"]):
        body = ",\n".join(f"      {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in e.items())
        lines.append("    {\n" + body + "\n    }" + ("," if i < len(data["presets"]) - 1 else ""))
    lines += ["  ]", "}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
