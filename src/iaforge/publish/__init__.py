"""Publishing: the `publish` stage prepares Hub-ready staging folders offline (staging.py, cards.py); the upload
is a separate, explicit command (`iaforge publish --push`, push.py), never part of `dvc repro`."""
