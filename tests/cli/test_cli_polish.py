"""Small robustness points of the command line (in-process): no abbreviated flags, plain
``--help``, a careful ``--dump-config``, runs labelled and damaged runs named in ``compare``
and ``render``, and one PRNG key where one key goes."""

import dataclasses
import re
import shutil

import jax
import pytest

import purejaxrl_ppo as pjp
from purejaxrl_ppo.cli import flags, main
from purejaxrl_ppo.core.config import field

MARKUP = re.compile(r"``|:[a-z]+:`")


def test_abbreviated_flags_are_errors(tmp_path, capsys):
    dump = ["--dump-config", str(tmp_path / "run.yaml")]  # never trains, even where the flag were accepted
    cases = {  # argv -> what argparse's error names
        ("train", "--num-env", "4", *dump): "unrecognized arguments: --num-env 4",
        ("train", "--total-time", "64", *dump): "unrecognized arguments: --total-time 64",
        ("compare", str(tmp_path), "--plo", "x.png"): "unrecognized arguments: --plo x.png",
        ("render", "--run", str(tmp_path), "--seed-i", "1"): "unrecognized arguments: --seed-i 1",
        ("--he",): "required: command",  # not --help
    }
    for argv, message in cases.items():
        with pytest.raises(SystemExit) as exit_info:
            main(list(argv))
        assert exit_info.value.code == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not (tmp_path / "run.yaml").exists()


def test_help_has_no_sphinx_markup(capsys):
    for command in ([], ["train"], ["compare"], ["render"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert "usage:" in text and not MARKUP.search(text), (command, MARKUP.findall(text))

    @dataclasses.dataclass
    class Marked:  # help strings written for the generated docs keep their markup there
        x: int = field(1, "``num_envs`` copies of :class:`~purejaxrl_ppo.runs.options.RunOptions` (:func:`pjp.sweep`)")

    f = dataclasses.fields(Marked)[0]
    assert flags._help(f, "[default: 1]") == "num_envs copies of RunOptions (pjp.sweep) [default: 1]"


def test_dump_config_creates_parents_and_refuses_to_overwrite(tmp_path, capsys):
    target = tmp_path / "new" / "dir" / "run.yaml"
    assert main(["train", "--num-envs", "8", "--dump-config", str(target)]) == 0
    first = target.read_text()
    assert "num_envs: 8" in first
    capsys.readouterr()
    assert main(["train", "--num-envs", "16", "--dump-config", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error:") and str(target) in err and "--overwrite" in err
    assert target.read_text() == first
    assert main(["train", "--num-envs", "16", "--dump-config", str(target), "--overwrite"]) == 0
    assert "num_envs: 16" in target.read_text()


def test_compare_labels_runs_by_directory_name(tmp_path, finished_run, capsys, monkeypatch):
    from purejaxrl_ppo.analysis import plots
    from purejaxrl_ppo.cli.commands import run_labels

    for path in ("alpha", "beta", "a/same", "b/same"):
        shutil.copytree(finished_run, tmp_path / path)
    plotted = []
    monkeypatch.setattr(plots, "plot_learning_curves",
                        lambda runs, path, title="", **options: plotted.append([label for label, _ in runs]))
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "alpha"), str(tmp_path / "beta"), "--plot", str(tmp_path / "c.png")]) == 0
    table = capsys.readouterr().out
    header = next(line for line in table.splitlines() if "algo" in line)
    assert header.split()[1] == "run" and "alpha" in table and "beta" in table
    assert plotted == [["alpha", "beta"]]
    same = [tmp_path / "a" / "same", tmp_path / "b" / "same"]
    assert run_labels(same) == [str(p) for p in same] and run_labels([tmp_path / "alpha"]) == ["alpha"]
    assert main(["compare", *map(str, same), "--plot", str(tmp_path / "d.png")]) == 0
    assert plotted[-1] == [str(p) for p in same]


def _damaged(tmp_path, finished_run, name: str, damage) -> str:
    run = tmp_path / name
    shutil.copytree(finished_run, run)
    damage(run)
    return str(run)


@pytest.mark.parametrize("damage, named", [
    pytest.param(lambda run: (run / "summary.json").write_text(""), "summary.json", id="empty-summary"),
    pytest.param(lambda run: (run / "summary.json").write_text("{\"algo\": "), "summary.json", id="truncated-summary"),
    pytest.param(lambda run: (run / "metrics.npz").unlink(), "metrics.npz", id="no-metrics"),
])
def test_damaged_run_is_a_one_line_error(tmp_path, finished_run, capsys, damage, named):
    run = _damaged(tmp_path, finished_run, "damaged", damage)
    capsys.readouterr()
    for argv in (["compare", str(finished_run), run, "--plot", str(tmp_path / "c.png")],
                 ["render", "--run", run, "--out", str(tmp_path / "r.gif")]):
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        assert captured.err.startswith("error:") and captured.err.count("\n") == 1, captured.err
        assert "--resume" in captured.err and named in captured.err and not captured.out
    assert not (tmp_path / "c.png").exists() and not (tmp_path / "r.gif").exists()


def test_compare_guards_unreadable_summary_json(tmp_path, finished_run, monkeypatch, capsys):
    from purejaxrl_ppo.runs import rundir

    run = _damaged(tmp_path, finished_run, "bad", lambda run: (run / "summary.json").write_text("[1, "))
    monkeypatch.setattr(rundir, "require_finished", lambda run_dir: None, raising=False)  # only compare's own check
    assert main(["compare", run]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "summary.json" in err and "--resume" in err


TINY = pjp.PPOConfig(env_name="CartPole-v1", num_envs=2, num_steps=8, total_timesteps=32, hidden_sizes=(8,),
                     num_minibatches=1, update_epochs=1)


def test_train_refuses_a_batch_of_keys():
    train = pjp.make_train(TINY)
    assert pjp.make_train is pjp.core.loop.make_train
    key = jax.random.PRNGKey(0)
    hint = r"jax\.vmap\(train\)\(jax\.random\.split\(key, n\)\).*train_seeds\(config, n, key\)"
    for bad, shape in ((jax.random.split(key, 3), r"\(3, 2\)"), (jax.random.split(jax.random.key(0), 3), r"\(3,\)"),
                       (key[0], r"\(\)")):
        with pytest.raises((ValueError, TypeError), match=shape + ".*" + hint):
            jax.eval_shape(train, bad)
    with pytest.raises(ValueError, match=r"\(3, 2\).*" + hint):  # under vmap: one example's shape
        jax.eval_shape(jax.vmap(train), jax.random.split(key, (2, 3)))
    with pytest.raises(ValueError, match=r"\(3, 2\).*" + hint):  # under jit
        jax.jit(train).lower(jax.random.split(key, 3))
    jax.eval_shape(train, key)  # one raw key, one typed key, a vmapped batch of keys: all fine
    jax.eval_shape(train, jax.random.key(0))
    jax.eval_shape(jax.vmap(train), jax.random.split(key, 3))


def test_train_seeds_refuses_a_batch_of_keys():
    with pytest.raises(ValueError, match=r"shape \(4, 2\).*splits one key.*not a batch of keys"):
        pjp.train_seeds(TINY, 4, jax.random.split(jax.random.PRNGKey(0), 4))
