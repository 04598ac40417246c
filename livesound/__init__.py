"""livesound: live sound into images (audio encoder in CLIP space -> latent mapper -> StyleGAN2).

Importing the package loads neither Qt nor PortAudio; each lives behind the command that needs it.
"""

__version__ = "0.1.0"
