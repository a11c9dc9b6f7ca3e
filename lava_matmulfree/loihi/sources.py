"""The public sources the cost model's constants cite (:func:`~.hardware.const` takes one of these keys).

Each entry names a datasheet, a publication, a piece of public code or a measurement by title (and where it
can be found); :func:`~.hardware.provenance` writes the entry beside every constant of the report.
"""

SRC = {
    "paper": "Abreu, Shrestha, Zhu, Eshraghian 2025, 'Neuromorphic Principles for Efficient Large Language "
             "Models on Intel Loihi 2', arXiv:2503.18002 (ICLR 2025 SCOPE workshop); Tables 1-3 as publicly "
             "transcribed",
    "brief": "Intel Labs 2021, 'Taking Neuromorphic Computing to the Next Level with Loihi 2', technology brief",
    "press_mem": "press coverage of the Loihi 2 launch (e.g. fbhtechinfo.com, 'Intel's new Loihi-2 chip uses "
                 "1 million neurons'): 128 KB of local SRAM per core, flexibly partitioned; Kapoho Point board "
                 "with eight Loihi 2 chips",
    "kapoho": "Intel Kapoho Point board (8 Loihi 2 chips per board, stackable; connected to its host PC over "
              "Ethernet), as shown in Intel's Kapoho Point / QUBO material",
    "davies": "Davies et al. 2018, 'Loihi: A Neuromorphic Manycore Processor with On-Chip Learning', IEEE Micro "
              "38(1), Table of energy/performance figures",
    "sanafe": "SANA-FE simulator, SLAM-Lab/SANA-FE arch/loihi.yaml: Loihi 1 per-event energy/latency from Davies "
              "et al. 2018, recalibrated against Loihi hardware (Boyle et al.)",
    "hala": "Intel newsroom 2024, 'Intel Builds World's Largest Neuromorphic System' (Hala Point): 1,152 Loihi 2 "
            "chips, 140,544 neuro cores, up to 2,600 W, 380 trillion 8-bit synaptic ops/s",
    "onm": "open-neuromorphic.org, 'Loihi 2 - Intel' hardware page (summary of Intel material): ~1 W per chip",
    "orin": "NVIDIA Jetson Orin Nano series data sheet / module specifications (Orin Nano 8 GB: 1024 CUDA cores, "
            "32 tensor cores, GPU up to 625 MHz, 40 sparse INT8 TOPS, 68 GB/s LPDDR5, 7-15 W)",
    "h100": "NVIDIA H100 Tensor Core GPU datasheet (H100 SXM: 1,979 TFLOPS FP16 tensor with sparsity = 989 dense, "
            "67 TFLOPS FP32, 80 GB HBM3 at 3.35 TB/s, up to 700 W)",
    "dispatch": "public explanations of PyTorch eager dispatch (e.g. 'From PyTorch op to kernel launch', "
                "jiahuanglin.xyz GPU-kernel-serving lesson 18): ~5-25 us of host CPU work per op on a server "
                "CPU, independent of the op's size",
    "hf": "Hugging Face transformers LlamaDecoderLayer / Qwen2DecoderLayer eager forward, counted: per layer "
          "2 RMSNorms (~8 ops each), q/k/v/o, 3 view+transpose, rotary (~7 ops each for q and k), cache update, "
          "attention (8 ops eager: matmul, scale, mask slice+add, softmax, cast, dropout, matmul; see hf_eager), "
          "reshape, 2 residual adds, gate/up/act/mul/down, and the contiguous copies between them: ~60 host ops",
    "hf_generate": "Hugging Face transformers GenerationMixin.generate, since v4.45 (pull request #31292, 'Reducing "
                   "memory usage: removing useless logits computation in generate()'): it passes logits_to_keep=1 "
                   "(num_logits_to_keep before v4.50) to every model whose forward takes it, LlamaForCausalLM and "
                   "Qwen2ForCausalLM among them, so the prompt's forward applies the LM head to the last position "
                   "only",
    "hf_eager": "Hugging Face transformers eager_attention_forward (LlamaAttention / Qwen2Attention eager path; the "
                "same steps inline before v4.48): scores = matmul(q, k^T) * scaling; scores + causal_mask; "
                "softmax(scores, dim=-1, dtype=float32).to(fp16); dropout (in eval it returns its input); "
                "matmul(probabilities, v). PyTorch aten/src/ATen/native/SoftMax.cpp: softmax of a CUDA half "
                "tensor with dtype=float runs one fused kernel (half_to_float) that reads half and writes float",
    "qwen": "Qwen2.5-0.5B config.json (Qwen team 2024): hidden 896, 24 layers, 14 heads, 2 KV heads, "
            "intermediate 4864, vocabulary 151,936, tied embeddings (494M parameters)",
    "zhu": "Zhu et al. 2024, 'Scalable MatMul-free Language Modeling': the Transformer++ (Llama-style) baseline "
           "of each MMfreeLM size has the same d, L, I and V",
    "lava": "lava-nc 0.10.0, lava/proc/graded (graded-spike processes with 24-bit payloads, precision=24) and "
            "lava/proc/dense (num_message_bits)",
    "sparse_design": "this project's estimate of Loihi 2's sparse synapse encoding, derived in docs/cost_model.md, "
                     "section 1 ('The sparse encoding'), from assumed field widths (Intel has not published the "
                     "format)",
    "derived": "derived in this module from the fields named in the note",
    "assumed": "modelling assumption of this project (no public figure found)",
    "fitted": "fitted on the paper's anchors by lava_matmulfree.loihi.calibration (docs/cost_model.md); the "
              "default is the result of that fit, the report re-fits it",
    "fitted_h200": "fitted on named cells of the H200 measurement (see h200_measured) by "
                   "lava_matmulfree.loihi.calibration.fit_h200 (docs/gpu_baselines.md, section 5); the default is "
                   "the result of that fit, which tests/test_gpu_baselines.py repeats (the report does not re-fit it)",
    "user": "set by the user (estimate --set NAME=VALUE, a hardware file or an override of build_report): the "
            "value is not the default's, nor fitted",
    "h200": "NVIDIA H200 Tensor Core GPU datasheet (H200 SXM: 141 GB HBM3e at 4.8 TB/s, up to 700 W, FP16 tensor "
            "1,979 TFLOPS with sparsity = 989 dense; the same GH100 die as the H100)",
    "h200_measured": "measured: Transformer++ 370M on one NVIDIA H200 (2026-12-04, driver 580, CUDA 13, torch 2.11, "
                     "transformers 5.17; NVML board energy, idle board power 116-123 W), copied into "
                     "lava_matmulfree/data/gpu_h200.json; docs/gpu_baselines.md",
    "hopper_wp": "NVIDIA H100 Tensor Core GPU Architecture whitepaper (2022): 50 MB of L2 cache on the H100 SXM5",
    "fa2": "Dao 2023, 'FlashAttention-2: Faster Attention with Better Parallelism and Work Partitioning', "
           "arXiv:2307.08691: optimized GEMM reaches up to 80-90% of the theoretical maximum device throughput; "
           "FlashAttention-2's forward pass 50-73% on the A100",
    "fa3": "Shah, Bikshandi, Zhang, Thakkar, Ramani, Dao 2024, 'FlashAttention-3: Fast and Accurate Attention with "
           "Asynchrony and Low-precision', arXiv:2407.08608: FlashAttention-2 reaches only 35% utilization on the "
           "H100",
    "nvml": "NVIDIA Management Library, nvmlDeviceGetTotalEnergyConsumption: the energy of the GPU board since the "
            "driver loaded; the host CPU is not on the board. On a Jetson the module's input rail (VDD_IN) holds "
            "the CPU cores, the GPU and the memory together",
    "jetson_idle": "NVIDIA developer forum, 'Jetson Orin Nano 8GB - Lowest Theoretical Operating Power "
                   "Consumption' (forums.developer.nvidia.com/t/348662): VDD_IN 2.18 W for a module with its "
                   "peripherals, display and PCIe disabled, CPU and GPU idle",
    "hf_cache": "Hugging Face transformers cache_utils: DynamicCache's layer update concatenates (torch.cat) its "
                "keys and values with the new ones into new tensors every step; StaticCache preallocates them and "
                "writes the new position in place (index_copy_)",
    "cuda_graph": "Gray 2019, 'Getting Started with CUDA Graphs', NVIDIA Technical Blog: a captured graph is "
                  "launched by one host call and its kernels run back to back, each still paying its launch "
                  "latency on the GPU",
    "mmfree_upstream": "ridgerchu/matmulfreellm (Zhu et al. 2024, the MMfreeLM code): mmfreelm/ops/bitnet.py "
                       "BitLinear.forward (an RMSNorm, activation_quant to int8 per token: abs, max, clamp, "
                       "127/max, mul, round, clamp, div; the straight-through sub and add; F.linear), "
                       "mmfreelm/layers/hgrn_bit.py (i, f, g, o BitLinears, sigmoid, lower bound, swiglu, "
                       "fused_recurrent_hgrn), mmfreelm/models/hgrn_bit/modeling_hgrn_bit.py (fused norms; the "
                       "LM head a BitLinear at every position)",
    "fla_chunk": "flash-linear-attention fla/ops/hgrn/chunk.py (chunk_hgrn): HGRN's recurrence as a chunked "
                 "parallel scan in two Triton kernels (within chunks, then across them)",
}
