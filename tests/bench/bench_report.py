"""What the bench runner scripts share: the JSON lines of a run, and the
median of one metric of one benchmark and implementation across rounds."""
import json
import statistics


def load(path):
    """Every JSON line of the file at path (other lines skipped)."""
    with open(path) as f:
        return [json.loads(l) for l in f if l.startswith("{")]


def median(rows, bench, impl, key):
    """The median of key over rows of bench and impl; None when none."""
    v = [r[key] for r in rows if r["bench"] == bench and r["impl"] == impl]
    return statistics.median(v) if v else None
