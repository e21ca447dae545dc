"""Hi-GRPO-style plans for procedural samples.

Plans. ``plan1`` follows Hi-GRPO's step 1 (a concise high-level semantic plan: global shape
primitives, their number and arrangement; ~15-40 words); ``plan2`` its step 2 (a detailed
visual description expanding the parts into precise geometric details: proportions, thickness,
placement; ~25-60 words). Both are deterministic text from the parameters with a little wording
variety drawn from the sample's generator. Lengths in plan2 are fractions of the object's
largest dimension, the unit the 64³ grid normalises to.
"""

from __future__ import annotations

import numpy as np

from .phrases import number_word

__all__ = ["PLANS", "make_plans"]


def _w(n):
    return number_word(n)


def _plan_chair(p, f, pick):
    n, tall = p["legs"], p["size"] == "tall"
    arms = p["armrests"]
    place = "at the four corners" if n == 4 else "two at the front corners and one centred at the back"
    p1 = (
        f"{pick('A chair', 'Chair')} made of simple blocks: a flat square seat on "
        f"{_w(n)} straight legs, a {'tall' if tall else 'short'} backrest panel rising from the rear edge"
        + (", and two armrests on the sides." if arms else ", and no armrests.")
    )
    back = "a solid panel" if p["back_style"] == "solid" else "an open frame of two posts and rails"
    p2 = (
        f"Seat slab {f(p['seat_w'])} wide, {f(p['seat_d'])} deep and {f(p['seat_t'])} thick, its top at "
        f"{f(p['seat_h'] + p['seat_t'])}. {_w(n).capitalize()} {'square' if p['square_legs'] else 'round'} legs "
        f"{f(2 * p['leg_r'])} thick, {place}. Backrest: {back}, {f(p['back_h'])} tall and {f(p['back_t'])} thick."
        + (f" Armrest bars {f(p['arm_h'])} above the seat on front posts." if arms else "")
    )
    return p1, p2


def _plan_table(p, f, pick):
    n, size = p["legs"], p["size"]
    top = "a round tabletop" if n == 3 else "a rectangular tabletop"
    where = {3: "spaced evenly around the centre", 4: "near the four corners", 6: "three along each long side"}[n]
    p1 = f"{pick('A', 'One')} {size} table: {top} resting on {_w(n)} vertical legs {where}" + (
        ", joined under the top by an apron frame." if p["apron"] else ", with nothing else."
    )
    shape = f"diameter {f(p['width'])}" if n == 3 else f"{f(p['width'])} by {f(p['depth'])}"
    p2 = (
        f"Tabletop {shape}, {f(p['top_t'])} thick, its top surface at height {f(p['height'])}. "
        f"{_w(n).capitalize()} {'square' if p['square_legs'] else 'round'} legs {f(2 * p['leg_r'])} thick reach "
        f"from the floor to the underside of the top, {where}."
        + (f" A shallow apron {f(1.5 * p['top_t'])} deep links the leg tops." if p["apron"] else "")
    )
    return p1, p2


def _plan_stool(p, f, pick):
    n, size = p["legs"], p["size"]
    seat = "square" if p["square_seat"] else "round"
    p1 = f"A {size} stool: a thick {seat} seat on {_w(n)} legs that splay slightly outward toward the floor" + (
        ", linked by a ring-shaped footrest." if p["footrest"] else ", with no footrest and no backrest."
    )
    p2 = (
        f"{seat.capitalize()} seat {f(2 * p['seat_r'])} across and {f(p['seat_t'])} thick at height "
        f"{f(p['height'])}. {_w(n).capitalize()} round legs {f(2 * p['leg_r'])} thick run from under the seat edge "
        f"to a wider footprint on the floor."
        + (f" A torus footrest at {f(p['foot_z'] * p['height'])} height connects all legs." if p["footrest"] else "")
    )
    return p1, p2


def _plan_bench(p, f, pick):
    n = p["legs"]
    p1 = f"A {p['size']} bench: one long narrow seat plank on {_w(n)} square legs, " + (
        "with a backrest board along the rear edge." if p["backrest"] else "open at the back, without a backrest."
    )
    back = ""
    if p["backrest"]:
        back = f" Backrest {f(p['back_h'])} tall, " + (
            "a solid slab on the seat's back edge."
            if p["back_style"] == "slab"
            else "a board raised on short posts above the seat."
        )
    p2 = (
        f"Seat plank {f(p['width'])} long, {f(p['depth'])} deep and {f(p['seat_t'])} thick, its top at "
        f"{f(p['seat_h'])}. {_w(n).capitalize()} square legs {f(p['leg_a'])} thick stand in "
        f"{'two rows of three' if n == 6 else 'the four corners'}, set in a little from the ends."
        + (" Low rails join the legs like an H." if p["stretcher"] else "")
        + back
    )
    return p1, p2


def _plan_bed(p, f, pick):
    n = p["pillows"]
    p1 = (
        f"A {p['size']} bed: a box frame on four short legs, a thick mattress on top, a tall headboard at the back"
        + (", a lower footboard at the front" if p["footboard"] else "")
        + f" and {_w(n)} pillow{'s' if n > 1 else ''} at the head."
    )
    p2 = (
        f"Frame {f(p['width'])} wide and {f(p['length'])} long, raised {f(p['leg_h'])} on legs; mattress "
        f"{f(p['mattress_h'])} thick. Headboard {f(p['head_h'])} tall and {f(p['board_t'])} thick across the full width"
        + (f"; footboard {f(p['foot_h'])} tall" if p["footboard"] else "")
        + f". {_w(n).capitalize()} flattened oval pillow{'s' if n > 1 else ''} "
        + f"lie{'' if n > 1 else 's'} against the headboard."
    )
    return p1, p2


def _plan_bookshelf(p, f, pick):
    n = p["shelves"]
    p1 = (
        f"A {p['size']} bookshelf: two vertical side panels joined by {_w(n + 1)} horizontal boards that make "
        f"{_w(n)} open shelves stacked one above another"
        + (", closed by a back panel." if p["back"] else ", open at the back.")
    )
    p2 = (
        f"Overall {f(p['width'])} wide, {f(p['height'])} tall and {f(p['depth'])} deep. Panels and boards "
        f"{f(p['board_t'])} thick; the {_w(n + 1)} boards are evenly spaced from bottom to top"
        + (", above a low plinth" if p["plinth"] else "")
        + f", giving {_w(n)} equal compartments"
        + (" in front of a thin back panel." if p["back"] else " with no back panel.")
    )
    return p1, p2


def _plan_mug(p, f, pick):
    p1 = f"A {p['size']} mug: one hollow cylinder open at the top with a flat bottom" + (
        ", and a curved loop handle on the right side." if p["handle"] else ", with no handle."
    )
    p2 = (
        f"Cylinder {f(2 * p['radius'])} across and {f(p['height'])} tall, walls {f(p['wall'])} thick around a deep "
        f"round cavity that reaches almost to the flat bottom."
        + (
            f" The handle is a half ring {f(2 * p['handle_r'])} tall attached to the side at mid height."
            if p["handle"]
            else " The outer side is smooth and plain."
        )
    )
    return p1, p2


def _plan_bottle(p, f, pick):
    body = "cylindrical" if p["body"] == "round" else "square box-shaped"
    p1 = f"A bottle: a {body} body, a sloping shoulder narrowing into a {p['neck']} thin neck" + (
        ", closed by a slightly wider cap on top." if p["cap"] else ", with an open lip and no cap."
    )
    p2 = (
        f"Body {f(2 * p['radius'])} across with a flat base; shoulder {f(p['shoulder'])} tall tapering to a neck "
        f"{f(2 * p['neck_r'])} wide and {f(p['neck_len'])} long."
        + (
            f" The cap is {f(2.9 * p['neck_r'])} wide, the top {f(p['cap_h'])} of the height."
            if p["cap"]
            else " A small rolled lip rings the open mouth."
        )
    )
    return p1, p2


def _plan_vase(p, f, pick):
    h = p["handles"]
    p1 = (
        f"A {p['shape']} vase: one smooth hollow body of revolution, widest at the belly, narrowing to a neck "
        f"and flaring at the lip" + (", with two loop handles on opposite sides." if h else ", with no handles.")
    )
    p2 = (
        f"Height {f(1.0)}; belly {f(2 * p['belly_r'])} across at {f(p['belly_z'])} up, base {f(2 * p['base_r'])} wide, "
        f"neck {f(2 * p['neck_r'])} wide, lip flaring to {f(2 * p['neck_r'] * p['lip'])}. Walls {f(p['wall'])} thick "
        f"around an open cavity." + (" Ring handles sit on both sides below the neck." if h else "")
    )
    return p1, p2


def _plan_lamp(p, f, pick):
    kind = "floor lamp" if p["size"] == "tall" else "desk lamp"
    shade = "a cone-shaped shade" if p["shade"] == "cone" else "a cylindrical drum shade"
    p1 = f"A {p['size']} {kind}: a flat {p['base']} base, one thin vertical pole in the centre and {shade} on top."
    p2 = (
        f"Total height {f(p['height'])}. {p['base'].capitalize()} base {f(2 * p['base_r'])} wide and {f(p['base_h'])} "
        f"thick; pole {f(2 * p['pole_r'])} thick; shade {f(p['shade_h'])} tall and {f(2 * p['shade_r'])} wide at the "
        f"bottom"
        + (", narrowing upward" if p["shade"] == "cone" else ", straight-sided")
        + ", centred over the base and hiding the top of the pole."
    )
    return p1, p2


def _plan_tree(p, f, pick):
    crown = "one big round crown" if p["crown"] == "single" else "a crown of four overlapping round clumps"
    p1 = f"A {p['size']} tree: a straight tapering trunk rising from the ground, topped by {crown}."
    p2 = (
        f"Trunk {f(2 * p['trunk_r'])} thick at the top, flaring a little at the ground, and about {f(p['trunk_h'])} "
        f"tall before the foliage. Crown about "
        f"{f(2 * p['crown_r'])} wide and {f(2 * p['crown_r'] * p['crown_stretch'])} tall"
        + (
            ", a single smooth ellipsoid."
            if p["crown"] == "single"
            else ": one clump on top and three smaller ones around it, lower down."
        )
    )
    return p1, p2


def _plan_pine(p, f, pick):
    n = p["tiers"]
    p1 = (
        f"A {p['size']} pine tree: a short trunk carrying {_w(n)} stacked cones that overlap and shrink toward "
        "the pointed top."
    )
    p2 = (
        f"Trunk {f(2 * p['trunk_r'])} thick, {f(p['trunk_h'])} tall. The lowest cone is {f(2 * p['base_r'])} wide; "
        "each of "
        f"the {_w(n)} cones starts partway up the one below and is {p['shrink']:.2f} as wide, so the outline steps "
        f"in {_w(n)} tiers to the tip."
    )
    return p1, p2


def _plan_mushroom(p, f, pick):
    c = p["count"]
    cap = "dome-shaped" if p["cap"] == "dome" else "flat disc"
    if c == 1:
        p1 = f"A single mushroom: one thick cylindrical stem under a wide {cap} cap."
        p1 += " Nothing else stands around it."
    else:
        p1 = (
            f"{_w(c).capitalize()} mushrooms side by side: one large and {_w(c - 1)} smaller, each a thick stem "
            "under a "
            f"wide {cap} cap."
        )
    p2 = (
        f"Main stem {f(2 * p['stem_r'])} thick and {f(p['stem_h'])} tall, slightly wider at the foot; its cap "
        f"{f(2 * p['cap_r'])} across and {f(p['cap_r'] * p['cap_k'])} high, "
        + ("rounded like a dome." if p["cap"] == "dome" else "flat with a rounded rim.")
        + (
            f" The smaller ones are {f(p['small'])} times its size, standing apart to its side{'s' if c > 2 else ''}."
            if c > 1
            else " The stem stands upright on the ground."
        )
    )
    return p1, p2


def _plan_cactus(p, f, pick):
    n = p["arms"]
    p1 = (
        f"A cactus: one tall rounded column with {_w(n)} arm{'s' if n > 1 else ''} that bend{'s' if n == 1 else ''} "
        f"upward like elbows" + (", standing in a flowerpot." if p["pot"] else ", rising straight from the ground.")
    )
    p2 = (
        f"Trunk a capsule {f(2 * p['trunk_r'])} thick reaching {f(p['trunk_h'])} high. Each arm is "
        f"{f(2 * p['arm_r'])} thick, leaves the trunk horizontally, then turns up; arms sit at different heights"
        + (" around the trunk." if n > 1 else ".")
        + (f" Tapered pot {f(2 * p['pot_r'])} wide and {f(p['pot_h'])} tall with a rim." if p["pot"] else "")
    )
    return p1, p2


def _plan_snowman(p, f, pick):
    n = p["balls"]
    p1 = (
        f"A snowman: {_w(n)} stacked spheres getting smaller toward the top, a carrot nose"
        + (", a top hat" if p["hat"] else "")
        + (" and two stick arms." if p["arms"] else ", no arms.")
    )
    p2 = (
        f"Bottom ball {f(2 * p['r1'])} across, next {f(2 * p['r2'])}"
        + (f", head {f(2 * p['r3'])}" if n == 3 else "")
        + "; each ball sinks slightly into the one below and the bottom is flattened on the ground. A small cone "
        "nose points forward from the head."
        + (" A hat with a thin brim sits on the head." if p["hat"] else "")
        + (" Thin sticks angle up and out from the upper body." if p["arms"] else "")
    )
    return p1, p2


def _plan_house(p, f, pick):
    n = p["windows"]
    roof = "a triangular gable roof" if p["roof"] == "gable" else "a flat roof slab"
    p1 = (
        f"A house: one box-shaped body under {roof}, a front door and {_w(n)} window{'s' if n > 1 else ''} in a row "
        f"on the front wall" + (", plus a chimney on the roof." if p["chimney"] else ", no chimney.")
    )
    p2 = (
        f"Walls {f(p['width'])} wide, {f(p['depth'])} deep and {f(p['wall_h'])} tall; "
        + (
            f"roof {f(p['roof_h'])} high with a ridge along the width"
            if p["roof"] == "gable"
            else "roof slab overhanging slightly"
        )
        + f". Door and {_w(n)} window{'s' if n > 1 else ''} are recessed {f(p['recess'])} into the front; windows "
        f"{f(p['win_w'])} wide, evenly spaced above door height."
        + (" Square chimney rises above the roof." if p["chimney"] else "")
    )
    return p1, p2


def _plan_tower(p, f, pick):
    n = p["tiers"]
    top = "a pointed cone spire" if p["top"] == "spire" else "a ring of battlements"
    p1 = (
        f"A round tower: {_w(n)} stacked cylindrical tiers, each a bit narrower than the one below with a ledge "
        f"between them, crowned by {top}."
    )
    p2 = (
        f"Base tier {f(2 * p['base_r'])} across; every tier is {f(p['body_h'] / n)} tall and shrinks to "
        f"{p['shrink']:.2f} of the width below. Thin ledges ring each tier top. "
        + (
            "A cone spire finishes the top."
            if p["top"] == "spire"
            else f"{_w(p['merlons']).capitalize()} square merlons line the parapet."
        )
        + " A door is cut at the bottom front."
    )
    return p1, p2


def _plan_arch(p, f, pick):
    n = p["openings"]
    p1 = (
        f"A {p['size']} stone arch: one thick rectangular wall pierced by {_w(n)} round-topped "
        f"opening{'s' if n > 1 else ''}, separated by {_w(n + 1)} solid pillars."
    )
    p2 = (
        f"Each opening is {f(p['opening_w'])} wide with straight sides {f(p['spring_h'])} tall and a semicircular top; "
        f"pillars {f(p['pillar_w'])} wide; wall {f(p['depth'])} thick with {f(p['margin'])} of solid wall above the "
        f"arch crown."
    )
    return p1, p2


def _plan_stairs(p, f, pick):
    n = p["steps"]
    p1 = f"A {p['size']} staircase: {_w(n)} solid box steps rising evenly from the front toward the back" + (
        ", with a handrail on posts along the right side." if p["railing"] else ", with no railing."
    )
    p2 = (
        f"{_w(n).capitalize()} steps, each {f(1.0 / n)} high and {f(p['depth'] / n)} deep, {f(p['width'])} wide, "
        f"filled solid down to the floor; total run {f(p['depth'])} from the bottom step at the front to the top "
        f"step at the back."
        + (f" Thin posts {f(p['rail_h'])} tall stand on each step, topped by a sloping rail." if p["railing"] else "")
    )
    return p1, p2


def _plan_ring(p, f, pick):
    p1 = f"A {p['band']} ring standing on its edge: one torus band" + (
        " with a gemstone in a small setting on top." if p["gem"] else " with nothing on it, a plain band."
    )
    p2 = (
        f"One torus about {f(1.0)} across with a round tube {f(2 * p['band_r'])} thick, standing vertically on the "
        f"ground with its hole facing the front."
        + (
            f" A faceted gem {f(2 * p['gem_r'])} wide sits on a tapered setting at the top."
            if p["gem"]
            else " The band has an even thickness all around."
        )
    )
    return p1, p2


def _plan_rocket(p, f, pick):
    n = p["fins"]
    p1 = (
        f"A rocket: one upright cylindrical body with a rounded nose cone, a small nozzle, {_w(n)} fins around the base"
        + (" and two side boosters." if p["boosters"] else ", no boosters.")
    )
    p2 = (
        f"Body {f(2 * p['body_r'])} across and {f(p['body_h'])} tall, nose {f(p['nose_h'])} tall. {_w(n).capitalize()} "
        f"thin swept fins {f(p['fin_h'])} tall reach {f(p['fin_span'])} outward and down to the ground, evenly "
        f"spaced around the tail; a short flared nozzle sits under the body."
        + (" Boosters are slim cylinders with cone tips on the left and right." if p["boosters"] else "")
    )
    return p1, p2


def _plan_car(p, f, pick):
    cab = {
        "sedan": "a sloped cabin in the middle",
        "pickup": "a short cabin at the front and an open cargo bed behind",
        "van": "a tall cabin covering almost the whole length",
    }[p["style"]]
    p1 = f"A {p['style']} car: a long low box body, {cab}, four round wheels" + (
        " and a rear spoiler wing." if p["spoiler"] else ", no spoiler."
    )
    p2 = (
        f"Body {f(p['length'])} long, {f(p['width'])} wide and {f(p['body_h'])} tall above wheel height; cabin "
        f"{f(p['cabin_h'])} tall with slanted windshield. Wheels {f(2 * p['wheel_r'])} across on both sides, front and "
        f"rear." + (" A flat wing on two posts sits at the back." if p["spoiler"] else "")
    )
    return p1, p2


def _plan_ladder(p, f, pick):
    n = p["rungs"]
    p1 = (
        f"A {p['size']} ladder standing upright: two parallel vertical rails joined by {_w(n)} evenly spaced "
        "horizontal rungs."
    )
    p2 = (
        f"Rails {f(p['rail'])} square and {f(1.0)} tall, {f(p['width'])} apart. {_w(n).capitalize()} round rungs "
        f"{f(2 * p['rung_r'])} thick, the first {f(p['first'])} above the ground, the last {f(p['last'])} below "
        "the top."
    )
    return p1, p2


def _plan_fence(p, f, pick):
    n, k = p["posts"], p["rails"]
    p1 = (
        f"A straight fence section: {_w(n)} upright posts in a row, evenly spaced, joined by {_w(k)} horizontal "
        f"rail{'s' if k > 1 else ''} running through them."
    )
    p2 = (
        f"Section {f(1.0)} long; posts {f(p['post'])} square and {f(p['height'])} tall"
        + (" with pointed tops" if p["pointed"] else " with flat tops")
        + f"; {_w(k)} rail{'s' if k > 1 else ''} {f(p['rail_t'])} thick span the full length"
        + (" at mid height" if k == 1 else ", spread evenly between low and high")
        + ", passing through every post."
    )
    return p1, p2


def _plan_windmill(p, f, pick):
    n = p["blades"]
    p1 = (
        f"A windmill: a tapered round tower with a {p['roof']} roof, a hub on the front near the top carrying "
        f"{_w(n)} long flat blades arranged like a star."
    )
    p2 = (
        f"Tower {f(2 * p['base_r'])} wide at the base, narrowing to {p['taper']:.2f} of that, {f(p['tower_h'])} tall. "
        f"{_w(n).capitalize()} blades {f(p['blade_len'])} long and {f(p['blade_w'])} wide radiate evenly from the hub "
        f"in the front plane. A door is cut at the bottom."
    )
    return p1, p2


PLANS = {
    "chair": _plan_chair,
    "table": _plan_table,
    "stool": _plan_stool,
    "bench": _plan_bench,
    "bed": _plan_bed,
    "bookshelf": _plan_bookshelf,
    "mug": _plan_mug,
    "bottle": _plan_bottle,
    "vase": _plan_vase,
    "lamp": _plan_lamp,
    "tree": _plan_tree,
    "pine_tree": _plan_pine,
    "mushroom": _plan_mushroom,
    "cactus": _plan_cactus,
    "snowman": _plan_snowman,
    "house": _plan_house,
    "tower": _plan_tower,
    "arch": _plan_arch,
    "stairs": _plan_stairs,
    "ring": _plan_ring,
    "rocket": _plan_rocket,
    "car": _plan_car,
    "ladder": _plan_ladder,
    "fence": _plan_fence,
    "windmill": _plan_windmill,
}


def make_plans(family: str, params: dict, longest: float, rng: np.random.Generator) -> tuple[str, str]:
    """(plan1, plan2) for a sample; lengths in plan2 are fractions of ``longest`` (the largest side)."""

    def f(v):
        return f"{v / longest:.2f}"

    def pick(*options):
        return str(options[int(rng.integers(len(options)))])

    return PLANS[family](params, f, pick)
