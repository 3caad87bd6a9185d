-- tamperlab store schema. Every table is keyed by deterministic ids so a rerun finds its finished parts.
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- One declarative run (`tamperlab eval`, `tamperlab run`, `attack`, `defend`).
CREATE TABLE IF NOT EXISTS runs (
    run_id          TEXT PRIMARY KEY,       -- hash of the canonical resolved spec
    kind            TEXT NOT NULL,          -- eval | run | attack | defend
    spec_json       TEXT NOT NULL,          -- the resolved spec
    status          TEXT NOT NULL,          -- running | complete | failed | diverged
    error           TEXT,
    provenance_json TEXT,                   -- packages, machine, data sets, judges, seeds
    created_at      TEXT NOT NULL,
    finished_at     TEXT,
    wall_seconds    REAL
);

-- Every model a run touches or produces, with its parent: the lineage tree.
CREATE TABLE IF NOT EXISTS models (
    model_id          TEXT PRIMARY KEY,
    parent_id         TEXT,                 -- NULL for a base model
    run_id            TEXT,
    label             TEXT NOT NULL,        -- e.g. base, safeguarded, harmful-sft/full@8
    source            TEXT,                 -- where its weights came from (path, cache name), if kept
    modification_json TEXT,                 -- {name, args} of the defense/attack that made it
    budget_json       TEXT,                 -- {steps, examples, tokens, flops, seconds} spent from parent
    created_at        TEXT NOT NULL
);

-- One evaluation of one model under one EvalSpec.
CREATE TABLE IF NOT EXISTS evaluations (
    eval_id     TEXT PRIMARY KEY,
    run_id      TEXT,
    model_id    TEXT,
    spec_json   TEXT NOT NULL,
    status      TEXT NOT NULL,              -- running | complete
    created_at  TEXT NOT NULL,
    finished_at TEXT,
    seconds     REAL
);

CREATE TABLE IF NOT EXISTS generations (
    eval_id    TEXT NOT NULL,
    prompt_set TEXT NOT NULL,               -- harmful | harmless | overrefusal
    prompt_id  TEXT NOT NULL,
    category   TEXT,
    prompt     TEXT NOT NULL,
    completion TEXT NOT NULL,
    PRIMARY KEY (eval_id, prompt_set, prompt_id)
);

CREATE TABLE IF NOT EXISTS verdicts (
    eval_id    TEXT NOT NULL,
    prompt_set TEXT NOT NULL,
    prompt_id  TEXT NOT NULL,
    judge      TEXT NOT NULL,
    refused    INTEGER NOT NULL,
    score      REAL,
    PRIMARY KEY (eval_id, prompt_set, prompt_id, judge)
);

-- Named figures of one evaluation, e.g. harmful_compliance_rate with its Wilson interval and n.
CREATE TABLE IF NOT EXISTS metrics (
    eval_id TEXT NOT NULL,
    name    TEXT NOT NULL,
    value   REAL,
    ci_low  REAL,
    ci_high REAL,
    n       INTEGER,
    PRIMARY KEY (eval_id, name)
);

-- One capability benchmark item of one evaluation, kept so a reader can audit one question: the gold
-- choice(s), the choice made by log-likelihood (and by length-normalised log-likelihood where the task reports
-- acc_norm), and every choice's log-likelihood. Generative items (GSM8K) have chosen = -1 and their response in
-- extra_json.
CREATE TABLE IF NOT EXISTS capability_items (
    eval_id      TEXT NOT NULL,
    task         TEXT NOT NULL,             -- the task's label: mmlu, mmlu@5shot, hellaswag, ...
    item_id      TEXT NOT NULL,
    subject      TEXT,                      -- MMLU subject
    gold_json    TEXT NOT NULL,             -- [index] ([indices] of the true answers for TruthfulQA MC2)
    chosen       INTEGER NOT NULL,
    chosen_norm  INTEGER,
    correct      INTEGER NOT NULL,
    correct_norm INTEGER,
    logliks_json TEXT NOT NULL,             -- one summed log-likelihood per choice
    greedy_json  TEXT,                      -- per choice: was every continuation token the argmax
    extra_json   TEXT,
    PRIMARY KEY (eval_id, task, item_id)
);

-- One arm of a run: the model an attack starts from and the attack, e.g. undefended x harmful-sft/lora.
CREATE TABLE IF NOT EXISTS arms (
    run_id          TEXT NOT NULL,
    arm             TEXT NOT NULL,
    defense_json    TEXT,                   -- {name, args} or NULL
    attack_json     TEXT NOT NULL,          -- {name, args}
    parent_model_id TEXT,                   -- the model attacked
    data_json       TEXT,                   -- attack data: source, distinct examples, template, effective batch
    PRIMARY KEY (run_id, arm)
);

-- One budget milestone along one training trajectory (one arm, one seed).
CREATE TABLE IF NOT EXISTS milestones (
    run_id     TEXT NOT NULL,
    arm        TEXT NOT NULL,
    seed       INTEGER NOT NULL,
    step       INTEGER NOT NULL,
    examples   INTEGER NOT NULL,
    tokens     INTEGER NOT NULL,
    flops      REAL NOT NULL,
    seconds    REAL NOT NULL,
    train_loss REAL,
    model_id   TEXT,
    eval_id    TEXT,
    PRIMARY KEY (run_id, arm, seed, step)
);

-- Break cost of one arm and seed (seed -1 = aggregate over seeds). When broken = 0 the budget columns hold
-- the largest budget tried: a lower bound, never a measured break.
CREATE TABLE IF NOT EXISTS break_costs (
    run_id           TEXT NOT NULL,
    arm              TEXT NOT NULL,
    seed             INTEGER NOT NULL,
    threshold        REAL NOT NULL,
    capability_bound REAL,                  -- the NLL tolerance (NULL when NLL does not bound the break)
    broken           INTEGER NOT NULL,
    steps            REAL,
    examples         REAL,
    tokens           REAL,
    flops            REAL,
    seconds          REAL,
    detail_json      TEXT,                  -- spread over seeds, interpolation notes
    PRIMARY KEY (run_id, arm, seed)
);

-- Free-form summary records of a run (e.g. immunization conditions), JSON values.
CREATE TABLE IF NOT EXISTS summaries (
    run_id     TEXT NOT NULL,
    key        TEXT NOT NULL,
    value_json TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);

-- Who is working on a running run: host, pid and the last sign of life (a store opened for writing adds this
-- table when it lacks it). A run marked running whose process is gone reads as interrupted.
CREATE TABLE IF NOT EXISTS heartbeats (
    run_id  TEXT PRIMARY KEY,
    host    TEXT NOT NULL,
    pid     INTEGER NOT NULL,
    beat_at TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS idx_models_run ON models(run_id);
CREATE INDEX IF NOT EXISTS idx_evaluations_model ON evaluations(model_id);
CREATE INDEX IF NOT EXISTS idx_milestones_run ON milestones(run_id);
