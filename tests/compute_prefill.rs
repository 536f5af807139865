//! Mixed decode + prefill iterations, resident weights and KV bytes per token.

use afdsim::compute::command::{ComputeCommand, KernelChoice, run_command};
use afdsim::compute::{
    AttentionKernel, LayerBreakdown, Method, Model, Op, Source, WeightPlacement, Work,
};

mod common;
use common::{h100, h200};
use rstest::rstest;

const KERNELS: [AttentionKernel; 2] = [AttentionKernel::Measured, AttentionKernel::FLASH_MLA];

fn models() -> Vec<Model> {
    Model::embedded_names()
        .into_iter()
        .map(|n| Model::embedded(n).unwrap())
        .collect()
}

/// A prefill-only iteration: `n` new tokens after `p` cached, at `layer`.
fn prefill(m: &Model, layer: u64, n: u64, p: u64) -> LayerBreakdown {
    m.attention_side_mixed(h100(), layer, 0, 0, n, p, AttentionKernel::FLASH_MLA)
        .unwrap_or_else(|e| panic!("{} layer {layer} n {n} p {p}: {e}", m.name))
}

/// Time of the chunk's core attention lines.
fn core_us(b: &LayerBreakdown) -> f64 {
    b.ops
        .iter()
        .filter(|o| matches!(o.work, Work::Prefill(_)))
        .map(|o| o.time_us)
        .sum()
}

fn has(b: &LayerBreakdown, name: &str) -> bool {
    b.ops.iter().any(|o| o.name == name)
}

/// The layers worth checking: the first, the first full-attention MoE one, the last.
fn layers(m: &Model) -> [u64; 3] {
    [0, m.first_full_moe_layer(), m.layers - 1]
}

// ---------------------------------------------------------------- mixed = decode without a chunk

#[test]
fn without_a_chunk_the_mixed_iteration_is_the_decode_one() {
    for m in models() {
        for t in [h100(), h200()] {
            for layer in layers(&m) {
                for (tokens, ctx) in [(1, 1), (8, 2048), (64, 8192), (256, 32768), (3, 70_000)] {
                    for k in KERNELS {
                        let at = m.attention_side_at(t, layer, tokens, ctx, k).unwrap();
                        let mixed = m
                            .attention_side_mixed(t, layer, tokens, ctx, 0, 0, k)
                            .unwrap();
                        assert_eq!(mixed, at, "{} layer {layer} {tokens}x{ctx}", m.name);
                        // A prefix without a chunk changes nothing either.
                        let mixed = m
                            .attention_side_mixed(t, layer, tokens, ctx, 0, 777, k)
                            .unwrap();
                        assert_eq!(mixed, at, "{} layer {layer} {tokens}x{ctx}", m.name);
                    }
                }
            }
        }
    }
}

#[test]
fn a_chunk_adds_its_tokens_to_every_linear_operator() {
    let m = Model::embedded("deepseek-v3").unwrap();
    let k = AttentionKernel::FLASH_MLA;
    let mixed = m
        .attention_side_mixed(h100(), 5, 64, 4096, 1024, 2048, k)
        .unwrap();
    let decode = m.attention_side_at(h100(), 5, 64, 4096, k).unwrap();
    let line = |b: &LayerBreakdown, name: &str| *b.ops.iter().find(|o| o.name == name).unwrap();
    for name in ["q_a+kv_a proj", "o proj", "router", "shared expert down"] {
        let Work::Table(q) = line(&mixed, name).work else {
            panic!("{name}")
        };
        assert_eq!(q.m, 64 + 1024, "{name}");
    }
    // The decode attention is the decode-only one, bit for bit.
    assert_eq!(line(&mixed, "mla decode"), line(&decode, "mla decode"));
    // Dense MLA runs the chunk in the MHA form: prefix + chunk latents up-projected.
    let Work::Table(q) = line(&mixed, "kv_b proj (prefix+chunk K/V)").work else {
        panic!()
    };
    assert_eq!((q.m, q.n, q.k), (2048 + 1024, 128 * 256, 512));
    // Absorb / un-absorb only for the decode tokens.
    let Work::Glue(g) = line(&mixed, "mla absorb (q_nope @ W_UK)").work else {
        panic!()
    };
    assert_eq!(
        g,
        afdsim::compute::Glue::Bmm {
            batch: 128,
            m: 64,
            n: 512,
            k: 128
        }
    );
    assert!(mixed.total_us() > decode.total_us() + core_us(&mixed));
}

// ---------------------------------------------------------------- growth

#[test]
fn prefill_time_grows_with_the_chunk_and_with_the_prefix() {
    for m in models() {
        for layer in layers(&m) {
            let windowed = m.attended_ctx(layer, 1 << 20) < 1 << 20;
            let mut last = (0.0, 0.0);
            for n in [1, 100, 512, 1000, 2048, 4096, 8192, 20_000] {
                let b = prefill(&m, layer, n, 0);
                let now = (core_us(&b), b.total_us());
                assert!(now.0 > last.0, "{} layer {layer} n {n}", m.name);
                // The whole layer from 512 tokens up: below, the measured GEMMs are not
                // monotone (H100's fp8 o proj takes 72.7 us at m = 1, 52.1 at m = 100).
                assert!(n <= 512 || now.1 > last.1, "{} layer {layer} n {n}", m.name);
                last = now;
            }
            let mut last = (0.0, 0.0);
            for p in [0, 100, 1024, 2048, 4096, 8192, 16384, 30_000, 100_000] {
                let b = prefill(&m, layer, 1024, p);
                let now = (core_us(&b), b.total_us());
                // A window caps each query's keys: past it the core stays flat (to rounding:
                // T_W(p + n) − T_W(p) of two large sums).
                let flat = 1.0 - 1e-12;
                assert!(
                    now.0 >= last.0 * flat && now.1 >= last.1 * flat,
                    "{} layer {layer} p {p}: {now:?} after {last:?}",
                    m.name
                );
                if !windowed {
                    assert!(now.0 > last.0, "{} layer {layer} p {p}", m.name);
                }
                last = now;
            }
        }
    }
}

#[test]
fn dsa_scores_with_the_indexer_only_past_topk_and_caps_attention() {
    let m = Model::embedded("deepseek-v3.2").unwrap();
    let layer = m.first_full_moe_layer();
    let short = prefill(&m, layer, 1024, 1024);
    assert!(!has(&short, "dsa indexer (fused, prefill)"));
    assert!(!has(&short, "kv_b proj (prefix+chunk K/V)"));
    let long = prefill(&m, layer, 1024, 1025);
    assert!(has(&long, "dsa indexer (fused, prefill)"));
    // Every query past topk attends to topk tokens: the same core at any longer prefix, while
    // the indexer's scoring keeps growing.
    let (a, b) = (
        prefill(&m, layer, 512, 4096),
        prefill(&m, layer, 512, 32768),
    );
    assert!((core_us(&a) - core_us(&b)).abs() < 1e-9 * core_us(&a));
    assert!(b.total_us() > a.total_us());
    // The absorbed form costs 2.83x the MHA kernel's time per (query, key).
    let v3 = Model::embedded("deepseek-v3").unwrap();
    let r = core_us(&prefill(&m, layer, 2048, 0)) / core_us(&prefill(&v3, layer, 2048, 0));
    assert!(
        (r - (2.0 * 576.0 + 2.0 * 512.0) / (4.0 * 192.0)).abs() < 1e-12,
        "{r}"
    );
}

// ---------------------------------------------------------------- chunks add up

/// Core attention of a prompt cut into `chunks`, summed.
fn chunked(m: &Model, layer: u64, chunks: &[u64]) -> f64 {
    let mut p = 0;
    let mut sum = 0.0;
    for &n in chunks {
        sum += core_us(&prefill(m, layer, n, p));
        p += n;
    }
    sum
}

#[test]
fn chunks_of_a_prompt_sum_to_the_whole_prompt() {
    for m in models() {
        for layer in layers(&m) {
            for (whole, cuts) in [
                (8192, vec![2048; 4]),
                (8192, vec![3000, 5192]),
                (32768, vec![8192; 4]),
                (5000, vec![1, 499, 4000, 500]),
            ] {
                let one = chunked(&m, layer, &[whole]);
                let many = chunked(&m, layer, &cuts);
                assert!(
                    (one - many).abs() <= 1e-9 * one,
                    "{} layer {layer} {cuts:?}: {many} vs {one}",
                    m.name
                );
            }
        }
    }
}

#[test]
fn a_whole_prompt_on_the_grid_is_the_tables_own_row() {
    let row = |op: Op, ctx: u64| {
        h100()
            .rows()
            .iter()
            .find(|r| r.query.op == op && r.query.ctx == ctx)
            .unwrap()
            .time_us
    };
    let v3 = Model::embedded("deepseek-v3").unwrap();
    let q = Model::embedded("qwen3-235b-a22b").unwrap();
    for (m, op) in [(&v3, Op::MlaPrefill), (&q, Op::GqaPrefill)] {
        for len in [512, 4096, 16384] {
            let b = prefill(m, 5, len, 0);
            let line = b
                .ops
                .iter()
                .find(|o| matches!(o.work, Work::Prefill(_)))
                .unwrap();
            assert_eq!(line.time_us, row(op, len), "{} {len}", m.name);
            assert_eq!(line.source, Source::Table(Method::Exact));
        }
    }
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_mixed_iterations_are_errors_not_panics() {
    let m = Model::embedded("deepseek-v3.2").unwrap();
    let k = AttentionKernel::Measured;
    let run = |d, c, n, p| m.attention_side_mixed(h100(), 5, d, c, n, p, k);
    assert!(run(0, 4096, 0, 0).is_err());
    assert!(run(4, 0, 16, 0).is_err());
    assert!(run(0, 0, 16, 0).is_ok());
    assert!(run(u64::MAX, 1, 2, 0).is_err());
    assert!(run(0, 0, 2, u64::MAX).is_err());
    assert!(m.attention_side_mixed(h100(), 61, 0, 0, 16, 0, k).is_err());
    // Every line of a long prompt's chunk is a positive, finite time.
    for b in [run(0, 0, 8192, 120_000).unwrap(), run(64, 1, 1, 0).unwrap()] {
        assert!(
            b.ops
                .iter()
                .all(|o| o.time_us.is_finite() && o.time_us > 0.0)
        );
    }
}

// ---------------------------------------------------------------- weights and KV

/// `model`'s parameters in one GPU holding every expert are within `tol_pct` of `published`.
fn check_total_params(model: &str, published: f64, tol_pct: f64) {
    let m = Model::embedded(model).unwrap();
    let all = WeightPlacement::Colocated {
        experts: m.routed_experts,
    };
    let p = m.weight_params(all) as f64;
    let err = (p - published).abs() / published * 100.0;
    assert!(
        err <= tol_pct,
        "{model}: {p:.4e} vs {published:.4e} ({err:.2} %)"
    );
}

#[test]
fn whole_model_parameters_match_the_published_totals() {
    // DeepSeek-V3 technical report: 671B (its Hugging Face card's 685B adds the 14B MTP
    // module). Qwen3 model cards: 235B and 30.5B. gpt-oss model card: 116.8B (117B).
    // Kimi K2 model card: 1T (one significant figure).
    check_total_params("deepseek-v3", 671e9, 0.5);
    check_total_params("qwen3-235b-a22b", 235e9, 0.5);
    check_total_params("qwen3-30b-a3b", 30.5e9, 0.5);
    check_total_params("gpt-oss-120b", 116.8e9, 0.5);
    check_total_params("kimi-k2", 1.0e12, 5.0);
}

#[test]
fn deepseek_v3_in_fp8_is_about_one_byte_per_parameter() {
    let m = Model::embedded("deepseek-v3").unwrap();
    let all = m.weight_bytes(WeightPlacement::Colocated { experts: 256 }) as f64;
    assert!((all - 671e9).abs() / 671e9 < 0.02, "{all:.4e}");
    // BF16 embeddings and LM head, FP8 block scales: a little over one byte per parameter.
    let params = m.weight_params(WeightPlacement::Colocated { experts: 256 }) as f64;
    assert!(
        all > params && all < 1.01 * params,
        "{all:.4e} vs {params:.4e}"
    );
}

#[test]
fn placements_split_the_model() {
    for m in models() {
        let e = m.routed_experts;
        let a = m.weight_bytes(WeightPlacement::AttentionSide);
        let f = |experts| m.weight_bytes(WeightPlacement::FfnSide { experts });
        let c = m.weight_bytes(WeightPlacement::Colocated { experts: e });
        assert_eq!(a + f(e), c, "{}", m.name);
        // Every shipped model keeps its shared expert on the attention side: the FFN side is
        // routed experts only, linear in their count.
        assert_eq!(f(e), e * f(1), "{}", m.name);
        assert_eq!(f(0), 0, "{}", m.name);
        assert!(a < c / 10, "{}: attention side {a} of {c}", m.name);
    }
    // Without a vocabulary the embeddings drop out, nothing else.
    let m = Model::embedded("qwen3-30b-a3b").unwrap();
    let mut no_vocab = m.clone();
    no_vocab.vocab = None;
    let emb = 2 * 151_936 * 2048 * 2;
    assert_eq!(
        m.weight_bytes(WeightPlacement::AttentionSide)
            - no_vocab.weight_bytes(WeightPlacement::AttentionSide),
        emb
    );
}

/// A model's KV bytes per token: every layer's, summed.
#[rstest]
#[case::deepseek_v3_2("deepseek-v3.2", 61 * (576 + 132))]
#[case::deepseek_v3("deepseek-v3", 61 * 576)]
#[case::kimi_k2("kimi-k2", 61 * 576)]
#[case::qwen3_235b_a22b("qwen3-235b-a22b", 94 * 2 * 4 * 128 * 2)]
#[case::gpt_oss_120b("gpt-oss-120b", 36 * 2 * 8 * 64 * 2)]
fn kv_bytes_per_token_sum_every_layer(#[case] name: &str, #[case] want: u64) {
    assert_eq!(
        Model::embedded(name).unwrap().kv_bytes_per_token(),
        want,
        "{name}"
    );
}

// ---------------------------------------------------------------- CLI

#[test]
fn layer_command_prints_a_mixed_iteration() {
    let cmd = ComputeCommand::Layer {
        model: Some("deepseek-v3.2".into()),
        model_file: None,
        table: "h100-sxm".into(),
        ffn_table: None,
        tokens: 32,
        ctx: 8192,
        prefill_tokens: 2048,
        prefill_prefix: 8192,
        experts_per_gpu: None,
        tokens_per_expert: None,
        kernel: KernelChoice::FlashMla,
        efficiency: 0.9,
        layer: None,
    };
    let mut out = Vec::new();
    run_command(&cmd, &mut out).unwrap();
    let s = String::from_utf8(out).unwrap();
    for needle in [
        "decode 32 tokens at ctx 8192 + prefill chunk of 2048 tokens after 8192",
        "mla decode",
        "mla prefill chunk (dsa)",
        "T(10240) - T(8192), window 2048",
        "dsa indexer (fused, prefill)",
        "gemm fp8 m=2080 n=24576 k=1536",
        "(43188 B, all layers)",
        // Tokens per expert default to the iteration's tokens: (32 + 2048) x 8 / 256.
        "8 experts x 65 tokens each",
    ] {
        assert!(s.contains(needle), "missing `{needle}` in\n{s}");
    }
}
