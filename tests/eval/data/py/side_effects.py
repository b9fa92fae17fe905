# Top-level code that leaves a trace when run: a file beside this one, then exit code 7.
import os
import sys

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "ran.txt"), "w") as f:
    f.write("this file was executed\n")
if len(sys.argv) > 0:
    sys.exit(7)

from diffusers import StableDiffusionPipeline

pipe = StableDiffusionPipeline.from_pretrained("runwayml/stable-diffusion-v1-5")
