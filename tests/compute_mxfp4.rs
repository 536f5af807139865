//! MXFP4 routed experts (gpt-oss): the model-file key, resident bytes, and grouped GEMM times
//! derived from the BF16 rows (`time = T_bf16 × roofline(mxfp4 bytes) / roofline(bf16 bytes)`).

use afdsim::compute::{
    ComputeTable, Dtype, Method, Model, Op, OpQuery, QueryError, Source, WeightPlacement, Work,
};

mod common;
use common::tables;

/// A table file of (op, dtype, m, n, k, groups, time) GEMM rows and (op, dtype, batch, ctx,
/// heads, kv_heads, head_dim, time) attention rows, in the table's column layout.
fn table_csv(
    gemms: &[(&str, &str, u64, u64, u64, u64, f64)],
    attn: &[(&str, &str, f64)],
) -> String {
    let mut s =
        String::from("op,dtype,m,n,k,groups,batch,ctx,heads,kv_heads,head_dim,m_max,time_us\n");
    for (op, dt, m, n, k, g, t) in gemms {
        s += &format!("{op},{dt},{m},{n},{k},{g},,,,,,,{t}\n");
    }
    for (op, dt, t) in attn {
        s += &format!("{op},{dt},,,,,8,1024,64,8,64,,{t}\n");
    }
    s
}

fn oss() -> Model {
    Model::embedded("gpt-oss-120b").unwrap()
}

/// gpt-oss's expert shapes: up+gate (n = 2·ffn, k = hidden) and down (n = hidden, k = ffn).
const SHAPES: [(u64, u64); 2] = [(5760, 2880), (2880, 2880)];

fn both(t: &ComputeTable, groups: u64, m: u64, n: u64, k: u64) -> (f64, f64, Method) {
    let q4 = OpQuery::grouped_gemm(Dtype::Mxfp4, groups, m, n, k);
    let q16 = OpQuery::grouped_gemm(Dtype::Bf16, groups, m, n, k);
    let p4 = t.predict(&q4).unwrap();
    let p16 = t.predict(&q16).unwrap();
    (p4.time_us, p16.time_us, p4.method)
}

// ---------------------------------------------------------------- model file

#[test]
fn gpt_oss_runs_mxfp4_experts_and_every_other_model_its_gemm_dtype() {
    let m = oss();
    assert_eq!(m.expert_dtype, Dtype::Mxfp4);
    assert_eq!(m.gemm_dtype, Dtype::Bf16);
    for name in Model::embedded_names() {
        let m = Model::embedded(name).unwrap();
        if name != "gpt-oss-120b" {
            assert_eq!(m.expert_dtype, m.gemm_dtype, "{name}");
        }
    }
}

#[test]
fn expert_weight_dtype_defaults_to_the_gemm_dtype_and_rejects_bad_values() {
    let text = include_str!("../workloads/models/gpt-oss-120b.toml");
    let key = "expert_weight_dtype = \"mxfp4\"";
    assert!(text.contains(key));
    let without = Model::parse("m.toml", &text.replace(key, "")).unwrap();
    assert_eq!(without.expert_dtype, Dtype::Bf16);
    let fp8 = Model::parse(
        "m.toml",
        &text.replace(key, "expert_weight_dtype = \"fp8\""),
    )
    .unwrap();
    assert_eq!(fp8.expert_dtype, Dtype::Fp8);
    // A bad value names the file, the key and what is allowed.
    let e = Model::parse(
        "m.toml",
        &text.replace(key, "expert_weight_dtype = \"nvfp4\""),
    )
    .unwrap_err();
    assert_eq!(e.key, "moe.expert_weight_dtype", "{e}");
    let msg = e.to_string();
    for part in ["m.toml", "nvfp4", "bf16", "fp8", "mxfp4"] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
    // MXFP4 is a weight format only: not an attention GEMM or transfer dtype.
    for (from, to, key) in [
        (
            "gemm_dtype = \"bf16\"",
            "gemm_dtype = \"mxfp4\"",
            "gemm_dtype",
        ),
        (
            "dispatch_dtype = \"fp8\"",
            "dispatch_dtype = \"mxfp4\"",
            "comm.dispatch_dtype",
        ),
    ] {
        assert!(text.contains(from));
        let e = Model::parse("m.toml", &text.replace(from, to)).unwrap_err();
        assert_eq!(e.key, key, "{e}");
    }
}

// ---------------------------------------------------------------- resident bytes

#[test]
fn mxfp4_experts_take_17_bytes_per_32_parameters() {
    let m = oss();
    let bf16 = Model {
        expert_dtype: Dtype::Bf16,
        ..m.clone()
    };
    for experts in [1, 4, 128] {
        let p = WeightPlacement::FfnSide { experts };
        // Same parameters; 2880 is a multiple of 32, so exactly 4.25 bits against 16.
        assert_eq!(m.weight_params(p), bf16.weight_params(p));
        assert_eq!(
            m.weight_bytes(p) * 64,
            bf16.weight_bytes(p) * 17,
            "{experts}"
        );
        assert_eq!(m.weight_bytes(p) * 32, m.weight_params(p) * 17, "{experts}");
    }
    // The attention side (BF16 attention, router, embeddings) does not change.
    assert_eq!(
        m.weight_bytes(WeightPlacement::AttentionSide),
        bf16.weight_bytes(WeightPlacement::AttentionSide)
    );
    // The whole model now fits one 80 GB GPU, as the card says; in BF16 it did not.
    let all = WeightPlacement::Colocated { experts: 128 };
    assert!(m.weight_bytes(all) < 80_000_000_000);
    assert!(bf16.weight_bytes(all) > 200_000_000_000);
}

// ---------------------------------------------------------------- GEMM times

/// The formula, evaluated from the table's own BF16 prediction and fitted BF16 roofline.
fn formula(t: &ComputeTable, groups: u64, m: u64, n: u64, k: u64) -> f64 {
    let q4 = OpQuery::grouped_gemm(Dtype::Mxfp4, groups, m, n, k);
    let q16 = OpQuery::grouped_gemm(Dtype::Bf16, groups, m, n, k);
    let fit = t.roofline().get(Op::GroupedGemm, Dtype::Bf16).unwrap();
    let roof = |q: &OpQuery| {
        let (f, b) = q.flops_and_bytes();
        fit.time_us(f, b)
    };
    t.predict(&q16).unwrap().time_us * roof(&q4) / roof(&q16)
}

#[test]
fn mxfp4_time_is_the_bf16_time_scaled_by_the_roofline_ratio() {
    for t in tables() {
        for (n, k) in SHAPES {
            for groups in [1, 4, 8, 16] {
                for m in [1, 3, 32, 100, 512, 4096] {
                    let (t4, _, method) = both(t, groups, m, n, k);
                    assert_eq!(method, Method::Roofline);
                    let want = formula(t, groups, m, n, k);
                    assert!((t4 - want).abs() <= 1e-9 * want, "{t4} vs {want}");
                }
            }
        }
    }
}

#[test]
fn few_tokens_per_expert_are_weight_bound_mxfp4_is_faster_but_not_below_4_25_over_16() {
    for t in tables() {
        for (n, k) in SHAPES {
            for groups in [1, 8, 16] {
                for m in [1, 2, 8, 32] {
                    let (t4, t16, _) = both(t, groups, m, n, k);
                    assert!(t4 < t16, "{} g={groups} m={m}: {t4} vs {t16}", t.name());
                    // Only the weight bytes shrink (activations, output and the floor stay).
                    assert!(
                        t4 >= t16 * 4.25 / 16.0,
                        "{} g={groups} m={m}: {t4} vs {t16}",
                        t.name()
                    );
                }
            }
            // 8 experts, 32 tokens each: well below BF16 (weights dominate the traffic).
            let (t4, t16, _) = both(t, 8, 32, n, k);
            assert!(t4 < 0.6 * t16, "{}: {t4} vs {t16}", t.name());
        }
    }
}

#[test]
fn thousands_of_tokens_per_expert_are_compute_bound_and_mxfp4_runs_at_the_bf16_rate() {
    for t in tables() {
        for (n, k) in SHAPES {
            for groups in [1, 8] {
                for m in [2048, 4096, 8192] {
                    let (t4, t16, _) = both(t, groups, m, n, k);
                    let r = t4 / t16;
                    assert!(
                        (0.97..=1.0 + 1e-12).contains(&r),
                        "{} g={groups} m={m}: ratio {r}",
                        t.name()
                    );
                }
            }
        }
    }
}

#[test]
fn the_mxfp4_advantage_shrinks_as_tokens_per_expert_grow() {
    // Activation bytes and FLOPs grow with the tokens, the weight bytes do not: the ratio
    // to BF16 never falls as m grows, and reaches 1 once both forms are compute-bound.
    for t in tables() {
        for (n, k) in SHAPES {
            let mut last = 0.0;
            for i in 0..=13 {
                let m = 1u64 << i;
                let (t4, t16, _) = both(t, 8, m, n, k);
                let ratio = t4 / t16;
                assert!(ratio >= last - 1e-12, "m={m}: {ratio} after {last}");
                assert!(ratio <= 1.0 + 1e-12);
                last = ratio;
            }
            assert!(
                (last - 1.0).abs() < 1e-12,
                "compute-bound at m=8192: {last}"
            );
        }
    }
}

#[test]
fn mxfp4_is_only_for_gemms_and_needs_bf16_rows() {
    let t = tables()[0];
    let q = OpQuery {
        dtype: Dtype::Mxfp4,
        ..OpQuery::attention(Op::GqaDecode, 8, 1024, 64, 8, 64)
    };
    assert!(matches!(t.predict(&q), Err(QueryError::NoData { .. })));
    // A table with only FP8 GEMM rows cannot time an MXFP4 GEMM.
    let csv = table_csv(
        &[
            ("grouped_gemm", "fp8", 32, 64, 64, 2, 10.0),
            ("grouped_gemm", "fp8", 64, 64, 64, 2, 12.0),
        ],
        &[],
    );
    let fp8_only = ComputeTable::parse("t", "t.csv", &csv).unwrap();
    let e = fp8_only
        .predict(&OpQuery::grouped_gemm(Dtype::Mxfp4, 2, 32, 64, 64))
        .unwrap_err();
    assert!(e.to_string().contains("bf16"), "{e}");
    // The loader and query files accept mxfp4 for GEMMs only.
    let bad = table_csv(&[], &[("gqa_decode", "mxfp4", 10.0)]);
    let e = ComputeTable::parse("t", "t.csv", &bad).unwrap_err();
    assert!(e.to_string().contains("mxfp4"), "{e}");
}

#[test]
fn a_table_with_measured_mxfp4_rows_uses_them() {
    let csv = table_csv(
        &[
            ("grouped_gemm", "bf16", 32, 64, 64, 2, 10.0),
            ("grouped_gemm", "bf16", 64, 64, 64, 2, 12.0),
            ("grouped_gemm", "mxfp4", 32, 64, 64, 2, 7.0),
            ("grouped_gemm", "mxfp4", 64, 64, 64, 2, 9.0),
        ],
        &[],
    );
    let t = ComputeTable::parse("t", "t.csv", &csv).unwrap();
    let p = t
        .predict(&OpQuery::grouped_gemm(Dtype::Mxfp4, 2, 32, 64, 64))
        .unwrap();
    assert_eq!((p.time_us, p.method), (7.0, Method::Exact));
}

// ---------------------------------------------------------------- FFN side

#[test]
fn gpt_oss_ffn_side_runs_mxfp4_grouped_gemms() {
    let m = oss();
    let bf16 = Model {
        expert_dtype: Dtype::Bf16,
        ..m.clone()
    };
    for t in tables() {
        let side = m.ffn_side(t, 8, 32).unwrap();
        let base = bf16.ffn_side(t, 8, 32).unwrap();
        assert_eq!(side.ops.len(), base.ops.len());
        let mut gemms = 0;
        for (a, b) in side.ops.iter().zip(&base.ops) {
            assert_eq!(a.name, b.name);
            match (a.work, b.work) {
                (Work::Table(q4), Work::Table(q16)) => {
                    assert_eq!((q4.op, q4.dtype), (Op::GroupedGemm, Dtype::Mxfp4));
                    assert_eq!(q16.dtype, Dtype::Bf16);
                    assert_eq!(a.source, Source::Table(Method::Roofline));
                    assert_eq!(a.time_us, t.predict(&q4).unwrap().time_us);
                    assert!(a.time_us < b.time_us, "{}: {}", a.name, t.name());
                    gemms += 1;
                }
                // BF16 activations: the same glue (FP8 dispatch dequantised, no FP8 quant).
                (wa, wb) => assert_eq!((wa, a.time_us), (wb, b.time_us)),
            }
        }
        assert_eq!(gemms, 2);
        assert!(side.total_us() < base.total_us());
    }
}
