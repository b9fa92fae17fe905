"""Writes the scheduler parity references in this folder (pndm.json, ddim.json, euler.json,
euler_a.json, dpmpp_2m.json) with the diffusers schedulers. Not run by the build or CI.

Each case runs a scheduler on a fixed [1, 4, 2, 2] sample with a fake model,
    model_output = 0.1 * scale_model_input(latents, t) + 0.05 * t / 1000,
the way StableDiffusionPipeline drives it (latents = sample0 * init_noise_sigma, then
scale_model_input / model / step for every t in scheduler.timesteps), and records the timesteps,
init_noise_sigma and the latents after every step (the C++ test teacher-forces each step onto the
previous step's recorded latents). Schedulers that add noise (euler_a, DDIM with
eta > 0) get generator=torch.Generator("cpu").manual_seed(0), so step() draws
torch.randn(shape, generator=g) as the C++ test's NoiseFn does with at::randn and a CPU generator
seeded 0.

Usage: python make_refs.py   (needs torch and diffusers; the references were made with torch 2.11 and the
diffusers version written into each file as "diffusers")
"""

import json
import os

import numpy as np
import torch
import diffusers
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
)

HERE = os.path.dirname(os.path.abspath(__file__))

# Stable Diffusion 1.5's scheduler_config.json (PNDM); most cases build another class from it,
# as Scheduler.from_config(pipe.scheduler.config) does.
SD15 = {
    "_class_name": "PNDMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
}

CLASSES = {
    "pndm": PNDMScheduler,
    "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "dpmpp_2m": DPMSolverMultistepScheduler,
}
BY_CLASS_NAME = {cls.__name__: cls for cls in CLASSES.values()}

SAMPLE0 = torch.randn(1, 4, 2, 2, generator=torch.Generator("cpu").manual_seed(1234))


def f32(values):
    """Shortest decimal strings that read back as the same float32 values."""
    return [float(str(np.float32(v))) for v in values]


def run_case(case_id, name, config, steps, eta=0.0):
    cls = BY_CLASS_NAME[config["_class_name"]] if name == "default" else CLASSES[name]
    sched = cls.from_config(config)
    sched.set_timesteps(steps)
    generator = torch.Generator("cpu").manual_seed(0)
    latents = SAMPLE0 * sched.init_noise_sigma
    samples = {}
    for i, t in enumerate(sched.timesteps):
        x = sched.scale_model_input(latents, t)
        model_output = 0.1 * x + 0.05 * float(t) / 1000
        kwargs = {}
        if name == "euler_a" or config["_class_name"] == "EulerAncestralDiscreteScheduler":
            kwargs["generator"] = generator
        if eta > 0:
            kwargs["eta"] = eta
            kwargs["generator"] = generator
        latents = sched.step(model_output, t, latents, **kwargs).prev_sample
        samples[str(i)] = f32(latents.flatten().tolist())
    return {
        "id": case_id,
        "name": name,
        "config": config,
        "steps": steps,
        "eta": eta,
        "timesteps": [float(t) for t in sched.timesteps],
        "init_noise_sigma": float(sched.init_noise_sigma),
        "samples": samples,
    }


def sd15(**overrides):
    return {**SD15, **overrides}


def trained_betas_config(**overrides):
    betas = np.linspace(0.0001, 0.03, 100).tolist()
    return sd15(num_train_timesteps=100, trained_betas=betas, steps_offset=0, **overrides)


CASES = {
    "pndm": [
        ("pndm_eps_leading", "pndm", sd15(), 20),
        ("pndm_eps_leading_50", "pndm", sd15(), 50),
        ("pndm_v_leading", "pndm", sd15(prediction_type="v_prediction"), 20),
        ("pndm_eps_trailing", "pndm", sd15(timestep_spacing="trailing"), 20),
        ("pndm_eps_linspace", "pndm", sd15(timestep_spacing="linspace"), 20),
        ("pndm_prk", "pndm", sd15(skip_prk_steps=False), 10),
        ("pndm_squaredcos", "pndm", sd15(beta_schedule="squaredcos_cap_v2"), 20),
        ("pndm_class_defaults", "default", {"_class_name": "PNDMScheduler", "set_alpha_to_one": True}, 20),
    ],
    "ddim": [
        ("ddim_eps_leading", "ddim", sd15(), 20),
        ("ddim_eps_trailing", "ddim", sd15(timestep_spacing="trailing"), 20),
        ("ddim_eps_linspace", "ddim", sd15(timestep_spacing="linspace"), 20),
        ("ddim_v_leading", "ddim", sd15(prediction_type="v_prediction"), 20),
        ("ddim_v_trailing_zero_snr", "ddim",
         sd15(prediction_type="v_prediction", timestep_spacing="trailing", rescale_betas_zero_snr=True), 20),
        ("ddim_sample_leading", "ddim", sd15(prediction_type="sample"), 20),
        ("ddim_eta", "ddim", sd15(), 20, 0.5),
        ("ddim_clip_range", "ddim", sd15(clip_sample_range=0.5), 20),
        ("ddim_no_clip_linear", "ddim", sd15(clip_sample=False, beta_schedule="linear", beta_start=0.0001,
                                             beta_end=0.02), 20),
        ("ddim_class_defaults", "default", {"_class_name": "DDIMScheduler"}, 20),
        ("ddim_trained_betas", "ddim", trained_betas_config(), 10),
    ],
    "euler": [
        ("euler_eps_leading", "euler", sd15(), 20),
        ("euler_eps_trailing", "euler", sd15(timestep_spacing="trailing"), 20),
        ("euler_eps_linspace", "euler", sd15(timestep_spacing="linspace"), 20),
        ("euler_v_leading", "euler", sd15(prediction_type="v_prediction"), 20),
        ("euler_v_linspace", "euler", sd15(prediction_type="v_prediction", timestep_spacing="linspace"), 20),
        ("euler_sample_leading", "euler", sd15(prediction_type="sample"), 20),
        ("euler_karras", "euler", sd15(use_karras_sigmas=True), 20),
        ("euler_final_sigma_min", "euler", sd15(final_sigmas_type="sigma_min", timestep_spacing="trailing"), 20),
        ("euler_v_trailing_zero_snr", "euler",
         sd15(prediction_type="v_prediction", timestep_spacing="trailing", rescale_betas_zero_snr=True), 20),
        ("euler_trained_betas", "euler", trained_betas_config(), 10),
    ],
    "euler_a": [
        ("euler_a_eps_leading", "euler_a", sd15(), 20),
        ("euler_a_eps_trailing", "euler_a", sd15(timestep_spacing="trailing"), 20),
        ("euler_a_eps_linspace", "euler_a", sd15(timestep_spacing="linspace"), 20),
        ("euler_a_v_leading", "euler_a", sd15(prediction_type="v_prediction"), 20),
        ("euler_a_squaredcos", "euler_a", sd15(beta_schedule="squaredcos_cap_v2"), 20),
    ],
    "dpmpp_2m": [
        ("dpm_eps_leading", "dpmpp_2m", sd15(), 20),
        ("dpm_eps_trailing", "dpmpp_2m", sd15(timestep_spacing="trailing"), 20),
        ("dpm_eps_linspace", "dpmpp_2m", sd15(timestep_spacing="linspace"), 20),
        ("dpm_v_leading", "dpmpp_2m", sd15(prediction_type="v_prediction"), 20),
        ("dpm_sample_leading", "dpmpp_2m", sd15(prediction_type="sample"), 20),
        ("dpm_eps_10_steps", "dpmpp_2m", sd15(), 10),
        ("dpm_order3", "dpmpp_2m", sd15(solver_order=3), 20),
        ("dpm_order3_10_steps", "dpmpp_2m", sd15(solver_order=3), 10),
        ("dpm_heun", "dpmpp_2m", sd15(solver_type="heun"), 20),
        ("dpm_order1", "dpmpp_2m", sd15(solver_order=1), 20),
        ("dpm_sigma_min_final", "dpmpp_2m", sd15(final_sigmas_type="sigma_min", timestep_spacing="trailing"), 20),
        ("dpm_euler_at_final", "dpmpp_2m", sd15(final_sigmas_type="sigma_min", euler_at_final=True), 20),
        ("dpm_lambda_clipped", "dpmpp_2m", sd15(lambda_min_clipped=-5.1, timestep_spacing="linspace"), 20),
        ("dpm_trained_betas", "dpmpp_2m", trained_betas_config(), 10),
    ],
}


def main():
    for file_name, cases in CASES.items():
        out = {
            "diffusers": diffusers.__version__,
            "sample0": f32(SAMPLE0.flatten().tolist()),
            "shape": list(SAMPLE0.shape),
            "cases": [run_case(*c) for c in cases],
        }
        with open(os.path.join(HERE, file_name + ".json"), "w") as f:
            json.dump(out, f, indent=None, separators=(",", ":"))
            f.write("\n")
        print(file_name, len(cases), "cases")


if __name__ == "__main__":
    main()
