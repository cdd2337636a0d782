"""Time the features and scores of open cases against one SQL pass over the same
tables.

Run: python bench/score.py [cases] [attempts] [--keep]
Defaults: 1,000,000 open cases and 20,000,000 contact attempts, with 2,000,000
payments and 300,000 promises.

It creates its own database (recova_bench_score_<pid>) on the configured server, or
on the embedded one when DATABASE_URL is unset, and drops it at the end unless
--keep is given. Steps:

1. Generate the rows in SQL (not timed), then VACUUM ANALYZE.
2. Baseline: one aggregate query per table that the features read (contact
   attempts, payments, promises, cases): count and a sum, no GROUP BY. Three runs.
3. `build_features` for every open case as of today. Three runs.
4. `score_open_cases` with the scorecard: features, points, grades, COPY into a
   temporary table, the UPDATE of cases and the upsert of case_scores. Three runs;
   the first changes every case and the others change none.
5. The same with a promoted logistic model and then a boosting model, each trained
   on a 50,000-row sample of the features with a made-up label. One run each.

It prints medians and the ratio of each to the baseline; numbers go to
docs/benchmarks.md by hand.
"""

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Python puts bench/ first on the path, where bench/queue.py would shadow the
# standard library's queue module.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RECOVA_HOME", str(ROOT / ".recova" / "bench"))

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from db import engine as db_engine  # noqa: E402
from db import migrate  # noqa: E402
from recova.settings import get_settings  # noqa: E402

RUNS = 3
ATTEMPT_INDEXES = {
    "ix_contact_attempts_case_id_at": "(case_id, at)",
    "ix_contact_attempts_debtor_id_at": "(debtor_id, at)",
    "ix_contact_attempts_collector_id_at": "(collector_id, at)",
    "ix_contact_attempts_at": "(at)",
}

BASELINE = [
    "SELECT count(*), sum(connected::int), max(at) FROM contact_attempts",
    "SELECT count(*), sum(amount) FROM payments",
    "SELECT count(*), sum(amount) FROM promises",
    "SELECT count(*), sum(total_due) FROM cases",
]


def bench_url() -> str:
    base = make_url(db_engine.server_url())
    name = f"recova_bench_score_{os.getpid()}"
    return base.set(database=name).render_as_string(hide_password=False)


def drop(url: str) -> None:
    target = make_url(url)
    maintenance = target.set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(db_engine.psycopg_conninfo(maintenance), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')


def median_seconds(samples: list[float]) -> str:
    runs = ", ".join(f"{sample:.2f}" for sample in samples)
    return f"{statistics.median(samples):.2f} s (runs: {runs})"


def generate(engine, cases: int, attempts: int) -> None:
    """Insert the rows with foreign-key triggers off (replica role), then index."""
    statements = [
        "SET session_replication_role = replica",
        "INSERT INTO result_codes (code, label_en, label_zh, connected, right_party) "
        "VALUES ('bench', 'Bench', '测试', true, true) ON CONFLICT DO NOTHING",
        "INSERT INTO creditors (id, name) VALUES (1, 'Bench Bank')",
        "INSERT INTO batches (id, creditor_id, name, placement_date, file_name, "
        " file_sha256, file_size, mode) VALUES (1, 1, 'bench', "
        " current_date - 400, 'bench.csv', repeat('0', 64), 0, 'valid-rows')",
        f"INSERT INTO debtors (id, creditor_id, name) SELECT n, 1, 'Bench debtor ' "
        f" || n FROM generate_series(1, {cases}) n",
        f"INSERT INTO cases (id, creditor_id, batch_id, debtor_id, case_no, product, "
        " total_due, balance, overdue_since, dpd_at_placement, placement_date, "
        " status) SELECT n, 1, 1, n, 'B' || n, "
        " (ARRAY['信用卡', '消费贷', '车贷'])[1 + n % 3], "
        " 1000 + (n::bigint * 7919) % 60000, 1000 + (n::bigint * 7919) % 60000, "
        " current_date - 30 - n % 400, 30, "
        f" current_date - 400, 'in_progress' FROM generate_series(1, {cases}) n",
        *(f"DROP INDEX {name}" for name in ATTEMPT_INDEXES),
        f"INSERT INTO contact_attempts (case_id, debtor_id, at, channel, target, "
        f" result_code, connected, right_party) SELECT 1 + n % {cases}, "
        f" 1 + n % {cases}, now() - (n % 365) * interval '1 day' - interval '1 hour', "
        " 'phone', 'debtor', 'bench', (n * 31) % 10 < 3, (n * 31) % 10 < 2 "
        f" FROM generate_series(1, {attempts}) n",
        *(
            f"CREATE INDEX {name} ON contact_attempts {columns}"
            for name, columns in ATTEMPT_INDEXES.items()
        ),
        f"INSERT INTO payments (creditor_id, transaction_id, case_id, amount, "
        f" paid_on, source) SELECT 1, 'P' || n, 1 + (n * 13) % {cases}, "
        " 100 + n % 900, current_date - 1 - n % 365, 'import' "
        f" FROM generate_series(1, {2 * cases}) n",
        "INSERT INTO promises (case_id, amount, due_on, status, created_at) "
        f" SELECT 1 + (n * 17) % {cases}, 500, current_date - n % 200, "
        " (ARRAY['kept', 'broken', 'pending'])[1 + n % 3], "
        " now() - (n % 200 + 10) * interval '1 day' "
        f" FROM generate_series(1, {cases * 3 // 10}) n",
        "SELECT setval('cases_id_seq', (SELECT max(id) FROM cases))",
    ]
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def time_baseline(engine) -> list[float]:
    samples = []
    for _ in range(RUNS):
        with engine.connect() as conn:
            started = time.perf_counter()
            for statement in BASELINE:
                conn.execute(text(statement)).all()
            samples.append(time.perf_counter() - started)
    return samples


def time_features(engine, day) -> list[float]:
    from services.scoring.features import build_features

    samples = []
    for _ in range(RUNS):
        with Session(engine) as session:
            started = time.perf_counter()
            frame = build_features(session, day, scope="open")
            samples.append(time.perf_counter() - started)
    print(f"  features frame: {frame.height:,} rows, {frame.width} columns")
    return samples


def time_scoring(engine, day, runs: int) -> list[float]:
    from services.scoring import score_open_cases

    samples = []
    for _ in range(runs):
        with Session(engine) as session:
            started = time.perf_counter()
            counts = score_open_cases(session=session, day=day)
            samples.append(time.perf_counter() - started)
        print(
            f"  {counts.scorer}: {counts.scored:,} scored, {counts.changed:,} "
            f"changed, grades {counts.grades}"
        )
    return samples


def promote_sample_model(engine, day, kind: str) -> None:
    """Train `kind` on 50,000 feature rows with a made-up label and make it champion."""
    from db.models_score import ModelVersion
    from services.scoring import models
    from services.scoring.features import (
        CATEGORICAL_FEATURES,
        NUMERIC_FEATURES,
        build_features,
    )
    from services.scoring.grading import bands_from_scores

    with Session(engine) as session:
        frame = build_features(session, day, scope="open")
        frame = frame.sample(min(50_000, frame.height), seed=1)
        rng = np.random.default_rng(1)
        signal = frame["right_party"].to_numpy() / 10 - frame["dpd"].to_numpy() / 400
        label = (rng.random(frame.height) < 1 / (1 + np.exp(-signal))).astype(int)
        model = models.train(
            kind,
            frame,
            label,
            numeric=list(NUMERIC_FEATURES),
            categorical=list(CATEGORICAL_FEATURES),
            seed=1,
        )
        probability = model.predict(frame)
        content, sha256 = models.dump(model)
        session.execute(text("UPDATE model_versions SET status = 'challenger'"))
        session.add(
            ModelVersion(
                training_id=kind,
                name=f"bench {kind}",
                kind=kind,
                source="history",
                status="champion",
                features=model.features,
                usable_on_cases=True,
                offered=True,
                metrics=models.evaluate(label, probability),
                training={},
                bands=bands_from_scores(probability * 100).model_dump(mode="json"),
                seed=1,
                content=content,
                sha256=sha256,
                library_versions=models.library_versions(),
            )
        )
        session.commit()


def main() -> None:
    arguments = [argument for argument in sys.argv[1:] if argument != "--keep"]
    keep = "--keep" in sys.argv
    cases = int(arguments[0]) if arguments else 1_000_000
    attempts = int(arguments[1]) if len(arguments) > 1 else 20_000_000

    url = bench_url()
    drop(url)
    migrate.upgrade(url)
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    db_engine.get_engine.cache_clear()
    engine = create_engine(url)
    try:
        from services.segments import local_today

        started = time.perf_counter()
        generate(engine, cases, attempts)
        print(
            f"{cases:,} open cases, {attempts:,} attempts, {2 * cases:,} payments, "
            f"{cases * 3 // 10:,} promises generated in "
            f"{time.perf_counter() - started:.0f} s"
        )
        day = local_today()
        baseline = time_baseline(engine)
        print(f"baseline, one aggregate per table: {median_seconds(baseline)}")
        base = statistics.median(baseline)

        features = time_features(engine, day)
        print(f"features: {median_seconds(features)}")
        print(f"  ratio features / baseline: {statistics.median(features) / base:.2f}")

        scores = time_scoring(engine, day, RUNS)
        print(f"score_open_cases, scorecard: {median_seconds(scores)}")
        print(f"  ratio scoring / baseline: {statistics.median(scores) / base:.2f}")

        for kind in ("logistic", "boosting"):
            promote_sample_model(engine, day, kind)
            samples = time_scoring(engine, day, 1)
            print(f"score_open_cases, {kind} model: {median_seconds(samples)}")
            print(f"  ratio {kind} / baseline: {samples[0] / base:.2f}")
    finally:
        engine.dispose()
        db_engine.get_engine.cache_clear()
        if keep:
            print(f"kept database {make_url(url).database}")
        else:
            drop(url)


if __name__ == "__main__":
    main()
