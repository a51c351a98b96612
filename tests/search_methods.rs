//! Search methods compared in one study, as a user runs them: `--method`, `--compare` and
//! `--test-budgets` on a small toy study, what the summary and report then hold, resume,
//! and the errors for settings that cannot work.

use std::path::Path;

mod common;

use common::{experiment, small_config, stderr, summary_without_times};

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

#[test]
fn methods_are_compared_at_equal_budgets_and_a_resumed_study_ends_the_same() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 4 iterations × K = 6: a budget of 24 trainings per search.
    let config = small_config(dir.path(), 4);
    // The toy config searches with CMA-ES; REINFORCE and TPE are compared with it.
    let args = ["--compare", "reinforce,tpe", "--test-budgets", "6,12"];
    let o = experiment(dir.path(), &config, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = dir.path().join("out");
    let summary = json(&out.join("summary.json"));
    let methods = summary["methods"].as_array().expect("methods");
    let keys: Vec<&str> = methods.iter().filter_map(|m| m["method"].as_str()).collect();
    assert_eq!(keys, ["random", "random_search", "learned", "reinforce", "tpe", "target"]);
    for m in methods {
        let key = m["method"].as_str().unwrap_or_default();
        let budgets: Vec<u64> = m["at_budgets"]
            .as_array()
            .expect("at_budgets")
            .iter()
            .filter_map(|b| b["trainings"].as_u64())
            .collect();
        let is_search = !matches!(key, "random" | "target");
        assert_eq!(budgets, if is_search { vec![6, 12, 24] } else { vec![] }, "{key}");
        assert_eq!(
            m["trainings_to_95"].as_array().map(Vec::len),
            Some(if is_search { 2 } else { 0 }),
            "{key}"
        );
        if is_search {
            assert_eq!(m["search_trainings"], 24, "{key}");
            // The score at the full budget is the final test score itself.
            assert_eq!(m["at_budgets"][2]["mean"], m["mean"], "{key}");
        }
    }
    let curves = summary["curves"].as_array().expect("curves");
    let curve_keys: Vec<&str> = curves.iter().filter_map(|c| c["method"].as_str()).collect();
    assert_eq!(curve_keys, ["cma_es", "reinforce", "tpe", "random_search"]);
    for c in curves {
        let mean: Vec<f64> = c["mean"].as_array().expect("mean").iter().filter_map(|v| v.as_f64()).collect();
        assert_eq!(mean.len(), 24);
        assert!(mean.windows(2).all(|w| w[1] >= w[0]), "best so far never falls: {mean:?}");
    }
    assert!(out.join("search_curves.png").is_file());
    let report = std::fs::read_to_string(out.join("report.md")).expect("report");
    assert!(report.contains("## Searches at equal budgets") && report.contains("REINFORCE"), "{report}");
    // Each compared search keeps the main one's records, in its own directory.
    let header = |p: &Path| std::fs::read_to_string(p).expect("csv").lines().next().map(String::from);
    for key in ["reinforce", "tpe"] {
        let run = out.join("seed-1").join(key);
        assert_eq!(header(&run.join("metrics.csv")), header(&out.join("seed-1/metrics.csv")), "{key}");
        assert!(run.join("checkpoint.json").is_file(), "{key}");
    }

    // The second seed's results and its REINFORCE search lost: --resume redoes them exactly.
    let whole = summary_without_times(&out);
    std::fs::remove_file(out.join("seed-1/result.json")).expect("remove result");
    std::fs::remove_dir_all(out.join("seed-1/reinforce")).expect("remove search");
    let mut resumed_args = args.to_vec();
    resumed_args.push("--resume");
    let o = experiment(dir.path(), &config, &resumed_args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary_without_times(&out), whole);

    // A resume with other methods is refused: the study's fingerprint holds them.
    let o = experiment(dir.path(), &config, &["--compare", "tpe", "--test-budgets", "6,12", "--resume"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("another config"), "{}", stderr(&o));
}

#[test]
fn the_main_method_can_be_replaced_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(dir.path(), 3);
    for method in ["reinforce", "tpe"] {
        let out = dir.path().join(method);
        let o = common::l2s(
            &common::experiment_args(&config, &out, &["--method", method, "--seeds", "1"]),
            dir.path(),
        );
        assert!(o.status.success(), "{method}: {}", stderr(&o));
        let summary = json(&out.join("summary.json"));
        let learned =
            summary["methods"].as_array().and_then(|m| m.iter().find(|m| m["method"] == "learned")).cloned();
        let label = learned.as_ref().and_then(|m| m["label"].as_str()).unwrap_or_default().to_string();
        assert!(label.contains(if method == "tpe" { "TPE" } else { "REINFORCE" }), "{label}");
        let checkpoint = json(&out.join("seed-0/checkpoint.json"));
        assert!(
            checkpoint["learner"].get(if method == "tpe" { "Tpe" } else { "Reinforce" }).is_some(),
            "{checkpoint}"
        );
    }
}

#[test]
fn settings_that_cannot_work_are_refused_with_the_field_and_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = small_config(dir.path(), 4);
    let cases: [(&[&str], &str); 3] = [
        (&["--compare", "cma-es"], "`study.compare[0]` CMA-ES is already searched"),
        (
            &["--test-budgets", "7"],
            "`study.test_budgets[0]` 7 must be a multiple of samples_per_iteration (6)",
        ),
        (&["--test-budgets", "30"], "to the full budget 24"),
    ];
    for (args, message) in cases {
        let o = experiment(dir.path(), &config, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains(message) && err.contains("hint:"), "{args:?}: {err}");
        assert!(
            !dir.path().join("out").exists(),
            "{args:?}: nothing is written before the settings are checked"
        );
    }
    let text = std::fs::read_to_string(&config).expect("read");
    std::fs::write(
        &config,
        text.replace("final_trainings: 2", "final_trainings: 2, compare: [Tpe(gamma: 2.0)]"),
    )
    .expect("write");
    let o = experiment(dir.path(), &config, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("`study.compare[0].Tpe.gamma` is 2"), "{}", stderr(&o));
}
