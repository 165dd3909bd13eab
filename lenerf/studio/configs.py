"""How the app (and ``python -m lenerf config``) builds the training config of a new edit: a shipped recipe, or the
generator's defaults for a new edit - for the synthetic world the shipped texture recipes' settings, a part's mask
settings from the recipe that masks it, and source prompts naming the part's other variants. Every choice here was
measured on held-out heads (docs/app.md)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..editing import EditConfig
from ..editing.package import strength_ok
from ..errors import InputError
from ..generator import Generator
from ..hub import ROOT

SHIPPED_EDITS = ROOT / "checkpoints" / "edits"
#: settings the UI uses for a new edit of the synthetic world: those of the shipped texture recipes (refined,
#: shift-averaged pseudo-labels from two phrasings, the part's phrases contrasted; a mapper guided by MiniCLIP-color
#: that pays for change outside them, at the rate of `eyes_blue` and `hair_red`), with labels that fit a part of any
#: size (the app has no recipe for it): each map's Otsu cut within its top half, grown by colour through connected
#: pixels (session 31; Otsu cuts since session 25), the mask supervised on every ray with a capped balance (session
#: 31). Measured on 20 held-out heads (docs/app.md): nose -> red mask IoU 0.18 (session 23) -> 0.77 (session 25)
#: -> 0.90, success 60% -> 100%; skin -> dark 0.53 -> 0.83 (the neck joins the face); eyes -> green, hair -> white.
#: :func:`make_config` adds a part's recipe mask settings and the part's other variants as source prompts
SYNTHETIC_DEFAULTS = {"clip": "miniclip", "steps": 300, "lr_mapper": 0.3, "lr_attention": 3e-3,
                      "relevance_quantile": 0.5, "relevance_binarize": True, "relevance_grow": 0.2,
                      "relevance_grow_connected": True, "balanced_mask_loss": True, "mask_pos_weight_max": 4.0,
                      "mask_prompt_select": "contrast", "afn_warmup": 300, "mask_stride": 1, "afn_xyz_frequencies": 6,
                      "loss": "dir_diff", "threshold": 0.8, "relevance_refine": 10, "relevance_shift_px": 2,
                      "mask_prompt_templates": ["{}", "a face with {}"], "edit_clip": "miniclip-color",
                      "lambda_outside": 1.0}
#: what a new synthetic edit with the deformation switch on adds (the settings that made session 23's `eyes_big`
#: learn: encoded, mirror-symmetric, its own rate, paying for its offsets; the official raw-x network learns no local
#: deformation) and the mask settings a recipe-less shape edit was measured with (docs/app.md: Otsu-cut labels,
#: as session 23's `eyes_big` every other ray and full balance; it already trained 796 s at stride 2, and every ray
#: costs 1.4-2x the time). Since session 34 only for parts without a shipped shape recipe: "eyes" take `eyes_big`'s
#: settings (:func:`part_shape_recipe`)
SYNTHETIC_DEFORMATION = {"dn_xyz_frequencies": 6, "dn_symmetric": True, "lr_deformation": 0.01, "lambda_offset": 3.0,
                         "mask_stride": 2, "mask_pos_weight_max": None, "relevance_otsu": True,
                         "relevance_quantile": None, "relevance_binarize": False, "relevance_grow": 0.0,
                         "relevance_grow_connected": False}
EG3D_DEFAULTS = {"clip": "ViT-B-32", "clip_pretrained": "openai", "steps": 1000, "resolution": 128}
#: what shapes an edit's 3D mask (the mask CLIP, its pseudo-labels, the attention field, its losses and threshold).
#: None of it reads the edit prompt, so a new synthetic texture edit of a part that a shipped texture recipe masks
#: (same mask prompt: "eyes", "hair", "lips") takes these from that recipe (:func:`part_mask_recipe`)
MASK_FIELDS = ("clip", "clip_pretrained", "negative_mask_prompts", "mask_prompt_select", "mask_prompt_templates",
               "relevance_quantile", "relevance_binarize", "relevance_otsu", "relevance_grow",
               "relevance_grow_connected", "relevance_shift_px", "relevance_shifts", "relevance_refine",
               "relevance_refine_sigma", "balanced_mask_loss", "mask_pos_weight_max", "mask_stride", "afn_kind",
               "afn_hidden", "use_xyz", "afn_xyz_frequencies", "afn_warmup", "lr_attention", "topk", "botk",
               "lambda_mask", "lambda_bin", "lambda_minmax", "lambda_tv", "threshold", "binarize_mask")


#: words of an edit prompt that ask for another shape (what a texture-only edit, which keeps the geometry, cannot do)
SHAPE_WORDS = ("long", "short", "big", "small", "large", "tall", "wide", "narrow", "thin", "thick", "round")
#: their comparatives ("longer hair" asks for the change "long hair" does): :func:`names_shape` finds them too, a
#: shape recipe that learns "long" is the recipe for "longer" (its prompts guide too, :func:`for_prompts`), and in the
#: synthetic world :func:`shape_note` suggests the base word for other prompts (docs/app.md, "Comparatives")
SHAPE_COMPARATIVES = {"longer": "long", "shorter": "short", "bigger": "big", "smaller": "small", "larger": "large",
                      "taller": "tall", "wider": "wide", "narrower": "narrow", "thinner": "thin", "thicker": "thick",
                      "rounder": "round"}


def shape_note(cfg: EditConfig) -> str:
    """A note for the user when a texture-only edit's prompt names a change of shape ("a face with long hair"): it
    will change colours only. "" otherwise. (A texture-only "long hair" edit trains minutes for a recolouring:
    docs/app.md.) A shape word that a source prompt names too asks for no change of shape: `hair_red`'s own prompt, "a
    face with short red hair", starts from short and long hair of each colour (until session 36 the shipped recipe
    got the note). An edit with the geometry but without the deformation network gets one too when the part's
    shipped shape recipe needs the network (`eyes_big`: "eyes" with "big eyes" and texture-only off), and one with
    the network when the part's recipe grows it without (`hair_long`: "hair" with "long hair" and the switch, which
    trained 940 s and grew no hair in session 34). An edit that takes a shape recipe's settings for a shape word its
    recipe does not name ("short hair" with `hair_long`'s) is told that the other way is not learnt (docs/editing.md,
    "Short hair"). A shape edit with a comparative ("longer") in the synthetic world, whose MiniCLIPs were never
    taught comparatives, is told so unless its prompt is a shape recipe's own with the base word (then that recipe's
    prompts guide too, :func:`for_prompts`): "a face with bigger eyes" guided by itself alone grew the eyes 1.24x, to
    big on none of 20 held-out heads (docs/app.md, "Comparatives")."""
    sources = {w for s in cfg.source_prompts for w in _words(s)}
    words = [w for w in names_shape(cfg.edit_prompt) if w not in sources]
    if not words:
        return ""
    more = [w for w in words if w in SHAPE_COMPARATIVES]
    guided = _is_comparative_of(cfg.edit_prompt, cfg.extra_edit_prompts)
    if cfg.generator == "synthetic" and more and not cfg.texture_only and not guided:
        note = _shape_word_note(cfg, words)
        base = SHAPE_COMPARATIVES[more[0]]
        return (f"'{more[0]}': the synthetic world's MiniCLIPs were never taught comparatives, and this prompt is no "
                f"shipped recipe's with '{base}' (whose prompts would guide too): 'a face with bigger eyes' guided by "
                f"itself alone grew the eyes 1.24x, on none of 20 held-out heads to big eyes (docs/app.md): say "
                f"'{base}'." + (" " + note if note else ""))
    return _shape_word_note(cfg, words)


def _shape_word_note(cfg: EditConfig, words: list[str]) -> str:
    """:func:`shape_note` for the shape words ``words`` (those of the edit prompt that no source prompt names)."""
    if not cfg.texture_only:
        network = part_shape_recipe(cfg.generator, cfg.mask_prompt, deformation=True)
        mapper = part_shape_recipe(cfg.generator, cfg.mask_prompt, deformation=False)
        if cfg.deformation and network is None and mapper is not None:
            return (f"'{words[0]}': the shipped {mapper} recipe makes this change of shape without the deformation "
                    f"network, and this edit's settings are not its: switch the network off (`config --geometry` "
                    f"without `--deformation`) for its settings.")
        if cfg.deformation or network is None or mapper is not None:
            return _other_way_note(cfg, words)
        return (f"'{words[0]}' asks for a change of shape that the shipped {network} recipe makes with the deformation "
                f"network, which this edit does not train: switch it on (`config --deformation`) for its settings.")
    how = ("untick 'Texture only' (`config --geometry`) for the hair's length (the hair_long recipe's settings); "
           "switch on the deformation network for the size of the eyes" if cfg.generator == "synthetic"
           else "untick 'Texture only' (`config --geometry`) to let the geometry change")
    return (f"'{words[0]}' asks for a change of shape, but this edit is texture-only (it keeps the geometry): only "
            f"colours will change. To change the shape: {how}.")


def _other_way_note(cfg: EditConfig, words: list[str]) -> str:
    """The note for a shape edit that takes its part's shape recipe (:func:`part_shape_recipe`) for a shape word the
    recipe's own edit prompt does not name; "" otherwise."""
    name = part_shape_recipe(cfg.generator, cfg.mask_prompt, deformation=cfg.deformation)
    own = names_shape(_recipe_configs(cfg.generator)[name].get("edit_prompt", "")) if name else []
    if not own or _shape_base(words) & _shape_base(own):
        return ""
    return (f"'{words[0]}': this edit takes the shipped {name} recipe's settings, which learn '{own[0]}'. The other "
            f"way is unmeasured or not learnt: with hair_long's settings 'a face with short hair' shortened the hair "
            f"of none of 20 held-out heads (docs/editing.md, \"Short hair\").")


def variant_source_prompts(G: Generator, mask_prompt: str, edit_prompt: str) -> list[str]:
    """Source prompts of a new texture edit: "a face with {v}" for each variant v of the masked part that the
    generator names (``G.expand_prompt``: "hair" -> "black hair", "brown hair", ...) except those whose own words
    the edit prompt names ("white hair" for "a face with white hair"); [] when it names fewer than two (EG3D).
    With ``source_prompt_select`` "best" each head's CLIP direction then starts at its own variant, as the shipped
    recipes' do; from "a face", MiniCLIP-color's direction to "white hair" turned black hair blue (docs/app.md)."""
    variants = G.expand_prompt(mask_prompt)
    if len(variants) < 2:
        return []
    shared = set.intersection(*(set(v.lower().split()) for v in variants))  # the phrasing: "eyes", "a ... nose"
    edit_words = set(edit_prompt.lower().split())
    return [f"a face with {v}" for v in variants
            if not any(w in edit_words for w in v.lower().split() if w not in shared)]


def _scale_warmup(base: dict, over: dict) -> dict:
    """Other step counts than the recipe's keep its ratio of attention-field warm-up (and cool-down) steps to edit
    steps."""
    for name in ("afn_warmup", "afn_cooldown"):
        if "steps" in over and base.get(name):
            over = {**over, name: round(base[name] * over["steps"] / base.get("steps", over["steps"]))}
    return over


def _norm(prompt) -> str:
    """A prompt with case and runs of spaces ignored."""
    return " ".join(str(prompt).lower().split())


def _recipe_configs(spec: str) -> dict[str, dict]:
    """{name: its JSON} of the shipped training configs (``checkpoints/edits/*.json``) for generator ``spec``, by
    name, each read once (unreadable files are skipped)."""
    out = {}
    for f in sorted(SHIPPED_EDITS.glob("*.json")):
        try:
            base = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if base.get("generator") == spec:
            out[f.stem] = base
    return out


def recipes(spec: str) -> dict[str, Path]:
    """Shipped training configs (``checkpoints/edits/*.json``) for generator ``spec``, by name."""
    return {name: SHIPPED_EDITS / f"{name}.json" for name in _recipe_configs(spec)}


def _is_texture(recipe: dict) -> bool:
    """Whether a recipe (its JSON) changes colours only: texture-only, no deformation network."""
    return recipe.get("texture_only", True) and not recipe.get("deformation", False)


def fill_threshold(recipe: dict, name: str) -> dict:
    """``recipe`` (a texture recipe's JSON) with its inference threshold lowered to the one `eval threshold`
    calibrated for its shipped package (``checkpoints/edits/NAME/edit.json``) when that one is lower: the package's
    masks needed it to fill the part (the calibration picks the highest threshold that leaves no ring of the old
    colour with the outside unchanged), and an edit trained with the same mask settings has such masks. A higher
    calibrated threshold was picked for the package's own mask, which already filled the part there; a new edit's
    keeps the recipe's. Measured (20 held-out heads, `eval edit --threshold`): eyes trained with the app's config,
    blue at 0.8 colour fill 0.910 / 99.3 dB outside -> at `eyes_blue`'s 0.6 0.986 / 87.2 dB; purple lips at 0.8
    0.998 / 84.7 dB, at `lips_green`'s 0.95 only 0.966 / 98.6 dB (so lips keep 0.8)."""
    info = SHIPPED_EDITS / name / "edit.json"
    try:
        meta = json.loads(info.read_text())
    except (OSError, ValueError):
        return recipe
    calibrated, own = meta.get("threshold"), recipe.get("threshold")
    if meta.get("threshold_calibration") and calibrated is not None and own is not None and calibrated < own:
        return {**recipe, "threshold": calibrated}
    return recipe


def part_masks(spec: str) -> dict[str, str]:
    """{mask prompt: recipe name} of the shipped texture-only recipes of ``spec`` (the first recipe per prompt, by
    name), whose mask settings new edits of that part take (:func:`part_mask_recipe`); empty but for the synthetic
    world."""
    out: dict[str, str] = {}
    if spec != "synthetic":
        return out
    for name, base in _recipe_configs(spec).items():
        if _is_texture(base):
            out.setdefault(_norm(base.get("mask_prompt", "")), name)
    return out


def part_shape_recipe(spec: str, mask_prompt: str, deformation: bool = True) -> str | None:
    """The shipped recipe of ``spec`` that changes this part's shape (mask prompt, case and spaces ignored; the
    first by name) the same way: with the deformation network (``deformation``; `eyes_big` for "eyes" in the
    synthetic world), else through the mapper's geometry (texture-only off, no deformation network: `hair_long` for
    "hair"). A new edit of the part takes its settings (:func:`make_config`). None for other parts and generators."""
    for name, base in _recipe_configs(spec).items():
        network = bool(base.get("deformation"))
        changes_shape = network if deformation else not (network or base.get("texture_only", True))
        if changes_shape and _norm(base.get("mask_prompt", "")) == _norm(mask_prompt):
            return name
    return None


def _words(text: str) -> list[str]:
    """The lower-case words of a prompt, commas ignored."""
    return text.lower().replace(",", " ").split()


def names_shape(edit_prompt: str) -> list[str]:
    """The words of ``edit_prompt`` that ask for another shape (:data:`SHAPE_WORDS` and
    :data:`SHAPE_COMPARATIVES`), in order."""
    return [w for w in _words(edit_prompt) if w in SHAPE_WORDS or w in SHAPE_COMPARATIVES]


def _shape_base(words: list[str]) -> set[str]:
    """The shape words of ``words`` with comparatives as their base word ("longer" -> "long")."""
    return {SHAPE_COMPARATIVES.get(w, w) for w in words}


def _base_words(prompt: str) -> str:
    """``prompt`` with each comparative as its base word ("a face with bigger eyes" -> "a face with big eyes")."""
    return " ".join(SHAPE_COMPARATIVES.get(w, w) for w in _words(prompt))


def _is_comparative_of(prompt: str, prompts: list[str]) -> bool:
    """Whether ``prompt`` holds a comparative and with each as its base word is one of ``prompts``."""
    return (any(w in SHAPE_COMPARATIVES for w in _words(prompt))
            and _norm(_base_words(prompt)) in {_norm(p) for p in prompts})


def _named(prompt: str, sources: list[str]) -> list[bool]:
    """For each of ``sources``: whether ``prompt`` names it - every word of it that the sources do not all share
    ("a face with ... eyes") is one of the prompt's words, a comparative counting as its base word ("a face with
    longer hair" names "a face with long hair": a start that is already the destination)."""
    words = [set(s.lower().split()) for s in sources]
    shared = set.intersection(*words) if len(words) > 1 else set()
    said = set(prompt.lower().split())
    said |= _shape_base(list(said))
    return [w - shared <= said for w in words]


def for_prompts(base: dict, mask_prompt: str, edit_prompt: str) -> dict:
    """A recipe's settings (its JSON) for other prompts (:func:`make_config` uses it for shape recipes and for a
    texture recipe's own edit prompt; a texture recipe with another one gives the app's settings). Another mask or
    edit prompt drops its ground-truth ``eval`` target. Another edit prompt also drops its ``extra_edit_prompts``
    (they rephrase the recipe's own edit prompt: `eyes_blue`'s "blue eyes" pulled a new "green eyes" edit to blue)
    and takes as source prompts the recipe's source prompts and its own edit prompt (the part's other variants: small
    eyes are a start for big ones), less those the new edit prompt names ("a face with big eyes" for "a face with
    big eyes"); none left -> "a face". A comparative of the recipe's own edit prompt (the prompt with its
    comparatives as their base words is one of the recipe's prompts: "a face with bigger eyes" for `eyes_big`) keeps
    the recipe's prompts as extra edit prompts (docs/app.md, "Comparatives")."""
    base = dict(base)
    if (base.get("mask_prompt"), base.get("edit_prompt")) == (mask_prompt, edit_prompt):
        return base
    base.pop("eval", None)  # the recipe's ground-truth target no longer applies
    own = base.get("edit_prompt", "")
    if _norm(own) == _norm(edit_prompt):
        return base
    own_prompts = [own, *base.get("extra_edit_prompts", [])]
    if _is_comparative_of(edit_prompt, own_prompts):
        # a comparative of the recipe's own prompt ("a face with bigger eyes" for "a face with big eyes") asks for
        # its change: its own prompts guide too (the synthetic world's MiniCLIPs were never taught comparatives)
        base["extra_edit_prompts"] = [p for p in own_prompts if _norm(p) != _norm(edit_prompt)]
    else:
        base["extra_edit_prompts"] = []
    sources = list(dict.fromkeys(s for s in [*base.get("source_prompts", []), own] if s))
    base["source_prompts"] = [s for s, n in zip(sources, _named(edit_prompt, sources)) if not n] or ["a face"]
    return base


def part_mask_recipe(spec: str, mask_prompt: str, deformation: bool = False) -> str | None:
    """The shipped recipe whose mask settings (:data:`MASK_FIELDS`) a new edit without a recipe takes: the
    texture-only recipe of ``spec`` with the same mask prompt (case and spaces ignored; :func:`part_masks`); None for
    shape edits (a growing part needs its mask to follow the new shape: hair_long's and eyes_big's are their own)
    and for parts no recipe masks (the defaults: Otsu-cut contrast maps). Measured in docs/app.md."""
    if deformation:
        return None
    return part_masks(spec).get(_norm(mask_prompt))


def make_config(spec: str, mask_prompt: str, edit_prompt: str, recipe: str | None = None, steps: int | None = None,
                strength: float | None = None, texture_only: bool | None = None, deformation: bool | None = None,
                *, max_steps: int = 2000, generator: Callable[[str], Generator] | None = None) -> EditConfig:
    """The config of a new edit of generator ``spec``: the shipped ``recipe`` (for other prompts than its own as
    :func:`for_prompts` says; for another part with that part's mask settings and source prompts,
    :func:`_part_settings`); with ``deformation`` on, or ``texture_only`` off and an edit prompt that names a shape
    (:func:`names_shape`), the part's shipped shape recipe of that kind (:func:`part_shape_recipe`, the same way);
    else the generator's defaults for a new edit. A synthetic texture recipe with an edit prompt
    that is none of its own (``edit_prompt``, ``extra_edit_prompts``) gives the defaults too: its colour guidance
    is tuned to its own colour (`hair_red`'s recipe for "white hair" reached white on 30% of 20 held-out heads, the
    defaults on 100%; docs/app.md), and the defaults of its part already hold its mask settings
    (:func:`part_mask_recipe`). The given
    options (steps, strength, texture_only, deformation) override either; other step counts than the recipe's keep
    its ratio of warm-up steps. ``generator(spec)`` -> the loaded generator (for the synthetic world's part variants;
    default :func:`lenerf.hub.load_generator`). Prompts are taken as given (the app checks them first)."""
    over = {"mask_prompt": mask_prompt, "edit_prompt": edit_prompt, "generator": spec}
    if steps is not None:
        steps = int(steps)
        if not 1 <= steps <= max_steps:
            raise InputError(f"steps must be between 1 and {max_steps}, got {steps}")
        over["steps"] = steps
    if strength is not None:
        over["strength"] = strength_ok(strength)
    if texture_only is not None:
        over["texture_only"] = bool(texture_only)
    if deformation is not None:
        over["deformation"] = bool(deformation)
    shipped, base = _recipe_configs(spec), None
    if recipe:
        if recipe not in shipped:
            raise InputError(f"unknown recipe '{recipe}' for generator '{spec}'")
        base = shipped[recipe]
        own = {_norm(p) for p in [base.get("edit_prompt", ""), *base.get("extra_edit_prompts", [])]}
        if spec == "synthetic" and _is_texture(base) and _norm(edit_prompt) not in own:
            base = None  # another colour: the app's settings for the part (they hold its recipe's mask settings)
        elif _is_texture(base):
            base = fill_threshold(base, recipe)
    # the part's shipped shape recipe, if any, for these prompts: with the deformation switch, or with the geometry
    # (texture-only off) for a prompt that names a shape ("a face with long hair" -> hair_long)
    if base is None and (over.get("deformation") or (over.get("texture_only") is False and names_shape(edit_prompt))):
        shape = part_shape_recipe(spec, mask_prompt, bool(over.get("deformation")))
        base = shipped.get(shape)
    if base is not None:
        base = for_prompts(base, mask_prompt, edit_prompt)
        if _norm(base.get("mask_prompt", "")) != _norm(mask_prompt):  # another part: its own mask and sources
            base = {**base, **_part_settings(spec, mask_prompt, edit_prompt, bool(base.get("deformation")),
                                             generator)}
        return EditConfig(**{**base, **_scale_warmup(base, over)}).validate(max_steps)
    defaults = _new_edit_defaults(spec, bool(over.get("deformation")))
    if over.get("deformation"):  # a change of shape needs the geometry (as the app's switch turns texture-only off)
        defaults = {**defaults, "texture_only": False}
    defaults = {**defaults, **_part_settings(spec, mask_prompt, edit_prompt, bool(over.get("deformation")),
                                             generator)}
    return EditConfig(**{**defaults, **_scale_warmup(defaults, over)}).validate(max_steps)


def _new_edit_defaults(spec: str, deformation: bool) -> dict:
    """The generator's settings for a new edit without a recipe (with the deformation network: its settings too)."""
    if spec != "synthetic":
        return EG3D_DEFAULTS
    return {**SYNTHETIC_DEFAULTS, **SYNTHETIC_DEFORMATION} if deformation else SYNTHETIC_DEFAULTS


def _part_settings(spec: str, mask_prompt: str, edit_prompt: str, deformation: bool,
                   generator: Callable[[str], Generator] | None) -> dict:
    """What a new edit takes from its part rather than from a recipe of another part: the mask settings
    (:data:`MASK_FIELDS`) of the texture recipe that masks it (:func:`part_mask_recipe`), else the generator's
    defaults for a new edit; as source prompts the part's other variants (texture edits of the synthetic world,
    :func:`variant_source_prompts`, each head's best), else "a face". (`eyes_blue`'s recipe for a nose kept the
    eyes' top-3% cut, its negative prompts - the noses' own phrases - and eye colours as source prompts;
    docs/app.md.)"""
    defaults = _new_edit_defaults(spec, deformation)
    part = part_mask_recipe(spec, mask_prompt, deformation)
    mask = fill_threshold(_recipe_configs(spec)[part], part) if part is not None else defaults
    plain = EditConfig(mask_prompt=mask_prompt, edit_prompt=edit_prompt)  # what a recipe leaves out means
    out = {k: mask.get(k, getattr(plain, k)) for k in MASK_FIELDS}
    out.update(source_prompts=list(plain.source_prompts), source_prompt_select=plain.source_prompt_select)
    if spec == "synthetic" and not deformation:
        load = generator
        if load is None:
            from ..hub import load_generator as load
        sources = variant_source_prompts(load(spec), mask_prompt, edit_prompt)
        if sources:  # as the recipes: each head's direction starts at its own variant of the part
            out.update(source_prompts=sources, source_prompt_select="best")
    return out


__all__ = ["EG3D_DEFAULTS", "MASK_FIELDS", "SHAPE_COMPARATIVES", "SHAPE_WORDS", "SYNTHETIC_DEFAULTS",
           "SYNTHETIC_DEFORMATION", "fill_threshold", "for_prompts", "make_config", "names_shape", "part_mask_recipe",
           "part_masks", "part_shape_recipe", "recipes", "shape_note", "variant_source_prompts"]
