{
  "targets": [
    {
      "target_name": "dsv4_native",
      "sources": ["addon.cc", "pool.cc", "kernels_scalar.cc", "kernels_avx2.cc", "fp4_avx2.cc", "fp4_gemm_vnni.cc", "indexer_scalar.cc", "indexer_avx2.cc", "indexer_vnni.cc", "ops_scalar.cc", "ops_avx2.cc", "ops_addon.cc", "bf16_scalar.cc", "bf16_avx2.cc", "dense_gemm_avx2.cc", "batch.cc", "ops2_scalar.cc", "ops2_avx2.cc", "ops2_addon.cc", "topk.cc", "heads_avx2.cc", "fast_scalar.cc", "fast_avx2.cc", "fast_addon.cc", "fastgemv_avx2.cc", "fastgemv_scalar.cc", "fastgemv_run.cc", "fastchain_avx2.cc", "fastchain_scalar.cc", "fp4q8_scalar.cc", "fp4q8_avx2.cc", "mem.cc"],
      "cflags_cc": ["-O3", "-std=gnu++17", "-ffp-contract=off", "-fno-fast-math", "-pthread"],
      "ldflags": ["-pthread"],
      "xcode_settings": {
        "OTHER_CPLUSPLUSFLAGS": ["-O3", "-ffp-contract=off"]
      }
    }
  ]
}
