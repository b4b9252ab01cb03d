"""Real-data hardening (issue 16): bad weights files, bad inputs, pseudonymisation, config errors."""
import pickle

import pytest

from medsynth.errors import MedsynthError


@pytest.mark.parametrize("name", ["garbage.pth", "garbage.safetensors"])
def test_garbage_inception_weights_name_the_file_and_never_suggest_unsafe_loading(tmp_path, name):
    from medsynth.metrics import inception as I

    bad = tmp_path / name
    bad.write_bytes(b"\x80\x04not really a checkpoint" * 10)
    with pytest.raises(MedsynthError) as err:
        I.load_backbone("inception-fid", weights=bad, dims=64)
    msg = str(err.value)
    assert str(bad) in msg and "\n" not in msg
    assert "weights_only" not in msg


def test_pickled_code_in_weights_is_refused_not_run(tmp_path):
    from medsynth.safe_load import load_tensor_file

    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    bad = tmp_path / "evil.pth"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(MedsynthError, match="evil.pth"):
        load_tensor_file(bad, "Inception")
