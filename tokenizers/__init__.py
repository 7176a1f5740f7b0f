"""Video and audio tokenizers (installed as `videopoet_tokenizers`).

The folder is named `tokenizers/` in the checkout but installs under the
import name `videopoet_tokenizers`, so it never shadows Hugging Face's
`tokenizers` distribution in a user's environment.
"""
