"""The built-in corpus: procedurally generated short children's stories, no download needed.

Stories follow TinyStories in spirit: a named main character and a friend, a place, an object, a
problem, short dialogue in quotes, a resolution and a moral, in five paragraphs joined by "\\n"
(120-230 words, mean ~165). Every story is built from word lists and sentence templates with
agreement (he / she / singular they, "a" / "an", past tense), so it is grammatical, and it follows
one fixed arc in which the names, object and place introduced first recur, so a small language
model has real structure to learn (the bigram entropy of the word stream is far below its
unigram entropy).

A share `near_dup_rate` of the stories of each split are near copies of an earlier original story
of the same split (one detail swapped, sometimes a sentence dropped), so deduplication has work to
do on it; `near_duplicate_pairs` returns that truth.

Everything is a pure function of the seed: numpy `SeedSequence` derives one independent stream per
(seed, split, purpose), each story draws from its own `random.Random`, and nothing depends on the
process hash seed. Invoked by `curate corpus --stories N --seed S --name NAME` through the CLI, or
directly::

    from datadiet.curate.corpus import CorpusConfig, generate_corpus
    train, val = generate_corpus(CorpusConfig(stories=20_000, seed=0))
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from datadiet.errors import UsageError
from datadiet.progress import NULL_TRACKER, Tracker
from datadiet.schema import ID, TEXT
from datadiet.store import Commit, PartWriter, Store

__all__ = [
    "GENERATOR_VERSION",
    "CorpusConfig",
    "generate_corpus",
    "generate_stories",
    "near_duplicate_pairs",
]

# Bump when any word list, template or draw order changes: the same (seed, sizes) then give other
# text, so callers put this in the store operation's parameters to keep version ids honest.
GENERATOR_VERSION = 1
TRAIN_SPLIT = 0
VAL_SPLIT = 1
_STORY_STREAM = 0
_DUP_STREAM = 1
_REPLACEMENT_STREAM = 2
# Progress is reported in chunks: one tracker call per story would cost ~2% at 20k stories/s.
_PROGRESS_CHUNK = 1_000


@dataclass(frozen=True)
class CorpusConfig:
    """What `generate_corpus` builds.

    Attributes:
        stories: Number of training stories (>= 1).
        val_stories: Number of validation stories; None means max(200, stories // 10).
        seed: Non-negative seed; the same seed gives the same corpus in any process.
        near_dup_rate: Share of each split's stories that are near copies of an earlier story, in [0, 1).
    """

    stories: int = 20_000
    val_stories: int | None = None
    seed: int = 0
    near_dup_rate: float = 0.03

    def __post_init__(self) -> None:
        _check_count("stories", self.stories, minimum=1)
        if self.val_stories is not None:
            _check_count("val_stories", self.val_stories, minimum=1)
        _check_seed(self.seed)
        _check_rate(self.near_dup_rate)

    @property
    def val_count(self) -> int:
        """The number of validation stories, with the default resolved."""
        return self.val_stories if self.val_stories is not None else max(200, self.stories // 10)


def _check_count(name: str, value: object, *, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UsageError(f"{name} must be an integer >= {minimum}, got {value!r}; pass e.g. {name}=1000")


def _check_seed(seed: object) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {seed!r}; pass e.g. seed=0")


def _check_rate(rate: object) -> None:
    if (
        not isinstance(rate, (int, float))
        or isinstance(rate, bool)
        or not math.isfinite(rate)
        or not 0.0 <= rate < 1.0
    ):
        raise UsageError(f"near_dup_rate must be a number in [0, 1), got {rate!r}; pass e.g. near_dup_rate=0.03")


# ---------------------------------------------------------------------------------------------
# Word lists. Multi-word entries are joined by "_" in the source strings and split here.


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.replace("_", " ") for w in text.split())


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """Entries "a_b|c_d" -> ("a b", "c d"); used for (base form, past form) and similar pairs."""
    out = []
    for item in text.split():
        left, right = item.split("|")
        out.append((left.replace("_", " "), right.replace("_", " ")))
    return tuple(out)


def _fields(text: str) -> tuple[tuple[str, str, str], ...]:
    """Entries "a|b_c|d" -> ("a", "b c", "d"); used for places and helpers."""
    out = []
    for item in text.split():
        a, b, c = item.replace("_", " ").split("|")
        out.append((a, b, c))
    return tuple(out)


GIRL_NAMES = _words(
    """Lily Mia Emma Ava Zoe Lucy Anna Ella Rosa Sara Nora Ruby Chloe Grace Hannah Ivy Jade Kate Leah Maya
    Nina Olive Paula Rita Sophie Tina Uma Vera Wendy Yara Alice Bella Clara Daisy Eva Fiona Gina Holly Iris
    Julia Kira Luna Molly Nell Opal Penny Rose Stella Tess Violet Willow Amy Beth Cora Dora Elsie Faith
    Gemma Hazel Isla Josie Lola Mabel Nadia Polly Quinn Rae Sadie Tilly Una Wren Zara Abby Bonnie Cleo
    Dina Edith Flora Greta Heidi Ingrid June Lena Maddie Nelly Olga Pearl Rhea Sally Thea Vicky Winnie
    Amara Bianca Celia Daphne Esme Freya Gloria Harriet Imogen Jasmine Keira Laura Marta Naomi Phoebe
    Priya Ramona Selma Tara Ursula Viola Yasmin Zelda Anya Carmen Delia Elena Frida Hilda Irene Lara
    Agnes Beatrix Camila Dolly Eliza Fern Georgia Hope Ida Joy Kitty Lottie Martha Nancy Orla Petra
    Queenie Rosie Susie Trudy Valerie Winona Xena Yvonne Zinnia Aurora Blossom Coral Dahlia Ember
    Flossie Goldie Honey Ines Juniper Katie Lacey Maisie Nova Ophelia Poppy Rosalind Saffron Tabitha""",
)
BOY_NAMES = _words(
    """Tom Ben Sam Max Leo Jack Tim Finn Noah Owen Luke Adam Eli Hugo Ivan Jake Kai Liam Milo
    Nate Oscar Pete Ray Seth Theo Toby Victor Will Zack Aaron Bruno Carl Dan Eddie Felix Gus Henry Isaac
    Jonah Ken Lewis Marco Ned Otto Paul Rex Simon Teddy Vince Walt Alfie Barney Cody Dexter Elliot Frank
    George Harry Jasper Kevin Lenny Mason Nico Ollie Percy Ralph Stan Tyler Wade Arlo Boris Caleb Derek
    Evan Fred Gavin Hank Igor Jesse Karl Louis Marvin Neil Omar Pablo Rupert Silas Timmy Ulrich Vernon
    Wesley Yusuf Albert Billy Chester Dylan Edgar Ferdinand Gilbert Howard Jamal Kenji Lucas Manny Nolan
    Oliver Peter Quentin Rafael Sebastian Tobias Arthur Benny Cyril Declan Emil Franklin Grant Hector
    Abel Bertie Clyde Duncan Ernie Floyd Gordon Hamish Ira Jethro Kurt Lionel Monty Norman Orson
    Pip Reggie Sidney Tucker Virgil Warren Xavier Yuri Zane Angus Basil Cosmo Digby Ezra Fletcher
    Giles Horace Ike Jonas Kip Lyle Murray Ozzie Quincy Rufus Spencer Thaddeus Wilbur Wally""",
)
NEUTRAL_NAMES = _words(
    """Alex Robin Jamie Riley Casey Jordan Taylor Morgan Charlie Avery Rowan Sky Kit Remy Jules Sage
    Frankie Harper Logan Parker Reese Emery Drew Ashley Blair Dakota Eden Finley Hayden Jessie Kendall
    Marley Noel Oakley Peyton Quincy River Shiloh Tatum Billie""",
)

# (pronoun forms) subject, Subject, object, possessive, Possessive, reflexive, was, is
_PRONOUNS: dict[str, tuple[str, ...]] = {
    "f": ("she", "She", "her", "her", "Her", "herself", "was", "is"),
    "m": ("he", "He", "him", "his", "His", "himself", "was", "is"),
    "n": ("they", "They", "them", "their", "Their", "themselves", "were", "are"),
}
_KIND_CHILD = {"f": ("girl",), "m": ("boy",), "n": ("child", "kid")}
_NAMES = {"f": GIRL_NAMES, "m": BOY_NAMES, "n": NEUTRAL_NAMES}

CHARACTER_ADJECTIVES = _words(
    """little kind curious brave shy happy clever gentle cheerful playful quiet friendly honest careful
    funny smart sweet busy helpful lively bold caring thoughtful silly polite tiny young sleepy jolly
    generous patient adventurous merry eager""",
)
ANIMALS = _words(
    """cat dog bunny rabbit puppy kitten bear fox mouse duck owl frog pig cow horse sheep goat lamb deer
    squirrel hedgehog turtle bird robin sparrow chick hen goose swan penguin elephant lion tiger monkey
    giraffe zebra hippo panda koala kangaroo raccoon otter beaver badger mole bee ladybug butterfly
    snail fish whale dolphin seal crab octopus parrot pony donkey llama camel bat worm ant owlet fawn
    cub calf piglet duckling chipmunk ferret hamster lizard toad dragonfly caterpillar firefly beetle
    goldfish seagull pelican flamingo peacock""",
)
ANIMAL_DOINGS = _words(
    """sleeping_in_the_sun eating_some_grass splashing_in_the_water singing_a_happy_song
    digging_a_little_hole chasing_its_tail nibbling_on_a_leaf rolling_in_the_mud watching_the_clouds
    hopping_from_rock_to_rock climbing_a_tree munching_on_a_carrot taking_a_nap building_a_nest
    looking_for_acorns sniffing_the_flowers humming_to_itself stretching_its_legs yawning_a_big_yawn
    gathering_berries drinking_from_a_puddle flapping_its_wings wiggling_its_nose""",
)
SMALL_ANIMALS = _words(
    """frog kitten puppy bunny duckling mouse squirrel hedgehog bird chick owlet hamster turtle snail
    lamb piglet chipmunk raccoon baby_fox baby_deer""",
)
ANIMAL_PARTS = _words("leg wing paw foot tail ear")

OBJECTS = _words(
    """ball kite teddy_bear doll toy_car boat drum book hat scarf balloon whistle puzzle robot train
    truck blanket pillow crayon paintbrush umbrella bucket shovel shell stone feather necklace bracelet
    ring crown wand jar basket box bell flute guitar trumpet piano map compass lantern flashlight clock
    watch marble top yo-yo jump_rope sled bike wagon skateboard helmet backpack lunchbox cup spoon
    bowl kettle teapot mirror comb brush ribbon button key coin wallet sticker notebook pencil
    eraser ruler camera telescope magnet rocket airplane dinosaur puppet mask cape costume sock mitten
    glove boot shoe leaf acorn pinecone flower seed plant pumpkin apple banana cookie cake cupcake
    sandwich pie candle star bead button_box music_box snow_globe treasure_chest picture painting
    letter card gift present rainbow_scarf paper_boat water_bottle pinwheel tambourine xylophone
    harmonica bubble_wand kazoo bow arrow shield sword tiara slipper sweater jacket apron quilt
    rattle spinning_top rubber_duck toy_boat toy_horse rocking_horse dollhouse tea_set piggy_bank
    jigsaw_puzzle picture_book storybook sketchbook chalk marker glitter_pen scooter unicorn
    hula_hoop frisbee beach_ball kaleidoscope walkie-talkie toy_drum toy_robot wind_chime""",
)
OBJECT_ADJECTIVES = _words(
    """red blue green yellow purple orange pink brown white black golden silver shiny sparkly soft
    fluffy tiny big small old new round bright colorful striped spotted smooth heavy light pretty
    special magic shimmering fuzzy wooden plastic glass paper velvet woolly squeaky bouncy wobbly
    dusty muddy clean lovely funny strange odd beautiful little huge giant favorite lucky secret
    ancient rusty glittering gleaming cozy warm cool precious crimson violet turquoise silky
    crinkly dotted checkered knitted painted polished tinkling whistling glowing jingly springy
    crooked lopsided flat curly chunky tall short long skinny plump""",
)
# (name, preposition for being there, what it has): "in the park", "The park had ..."
PLACES = _fields(
    """park|in|tall_trees_and_a_little_pond beach|on|warm_sand_and_gentle_waves
    forest|in|tall_pine_trees_and_mossy_logs garden|in|bright_flowers_and_buzzing_bees
    farm|on|a_red_barn_and_noisy_chickens lake|by|clear_water_and_tall_reeds
    zoo|at|big_cages_and_a_shady_path market|at|busy_stalls_and_sweet_smells
    library|in|quiet_shelves_and_soft_chairs playground|at|a_long_slide_and_squeaky_swings
    river|by|smooth_rocks_and_rushing_water hill|on|soft_grass_and_a_lonely_tree
    meadow|in|wild_flowers_and_hopping_grasshoppers school|at|a_big_yard_and_a_tall_flagpole
    bakery|at|warm_bread_and_sticky_buns harbor|at|little_boats_and_loud_seagulls
    orchard|in|apple_trees_and_buzzing_wasps pond|by|lily_pads_and_croaking_frogs
    village|in|small_cottages_and_a_stone_bridge castle|at|high_towers_and_a_deep_moat
    valley|in|green_fields_and_a_winding_stream jungle|in|hanging_vines_and_colorful_parrots
    desert|in|golden_dunes_and_prickly_cactuses mountain|on|snowy_peaks_and_steep_trails
    cave|in|cool_stone_walls_and_dripping_water island|on|palm_trees_and_white_sand
    town_square|in|a_splashing_fountain_and_many_pigeons museum|at|old_bones_and_shiny_statues
    fair|at|a_merry-go-round_and_sweet_popcorn circus|at|a_striped_tent_and_funny_clowns
    campsite|at|cozy_tents_and_a_crackling_fire aquarium|at|glowing_tanks_and_darting_fish
    greenhouse|in|warm_air_and_giant_leaves pumpkin_patch|in|fat_orange_pumpkins_and_twisty_vines
    backyard|in|a_wooden_fence_and_a_sandbox attic|in|dusty_boxes_and_old_trunks
    lighthouse|at|a_spiral_staircase_and_a_bright_lamp train_station|at|loud_whistles_and_busy_people
    swimming_pool|at|cool_blue_water_and_a_diving_board ice_rink|at|slippery_ice_and_cold_air
    countryside|in|rolling_hills_and_grazing_cows treehouse|in|a_rope_ladder_and_a_tiny_window
    sunflower_field|in|tall_sunflowers_and_humming_bees toy_shop|at|rows_of_toys_and_a_ticking_clock
    swamp|in|muddy_water_and_hopping_toads seaside|by|salty_air_and_shiny_pebbles""",
)
TIMES = _words(
    """sunny_morning bright_morning rainy_morning quiet_afternoon warm_afternoon windy_afternoon
    cool_evening summer_day winter_day spring_day autumn_day cloudy_day snowy_morning lazy_Sunday
    Saturday_morning chilly_morning golden_evening misty_morning hot_afternoon breezy_day""",
)
WEATHER = _words(
    """sunny warm bright windy cool breezy calm clear lovely pleasant crisp fresh mild golden""",
)
SKY_COLORS = _words("blue pink golden clear bright pale orange")
HOMES = _words(
    """in_a_small_house_near_the_forest in_a_blue_house_by_the_sea in_a_cozy_cottage_on_a_hill
    in_a_tall_building_in_the_city in_a_little_hut_by_the_river on_a_quiet_street_with_big_trees
    in_a_yellow_house_with_a_red_door in_a_warm_burrow_under_an_oak_tree on_a_farm_with_many_animals
    in_a_tiny_village_near_the_mountains in_a_houseboat_on_a_calm_lake in_a_busy_town_by_the_harbor""",
)
FAMILY = _words("mom dad grandma grandpa aunt uncle mother father granny big_sister big_brother parents")
# (relation, how the children address and name them later, pronoun key)
HELPERS = _fields(
    """mom|Mom|f dad|Dad|m grandma|Grandma|f grandpa|Grandpa|m aunt|Auntie|f uncle|Uncle|m granny|Granny|f
    big_sister|Big_Sister|f big_brother|Big_Brother|m""",
)
ACTIVITIES = _pairs(
    """play_with_blocks|played_with_blocks draw_pictures|drew_pictures
    paint_with_bright_colors|painted_with_bright_colors sing_songs|sang_songs
    dance_in_the_kitchen|danced_in_the_kitchen read_books|read_books run_in_the_grass|ran_in_the_grass
    jump_in_puddles|jumped_in_puddles climb_trees|climbed_trees ride_a_bike|rode_a_bike fly_kites|flew_kites
    build_sandcastles|built_sandcastles bake_cookies|baked_cookies pick_flowers|picked_flowers
    watch_the_clouds|watched_the_clouds count_the_stars|counted_the_stars
    collect_shiny_rocks|collected_shiny_rocks play_hide_and_seek|played_hide_and_seek
    swing_on_the_swings|swung_on_the_swings blow_bubbles|blew_bubbles make_paper_boats|made_paper_boats
    feed_the_ducks|fed_the_ducks tell_funny_stories|told_funny_stories
    splash_in_the_water|splashed_in_the_water roll_down_hills|rolled_down_hills
    chase_butterflies|chased_butterflies look_at_bugs|looked_at_bugs plant_seeds|planted_seeds
    play_the_drums|played_the_drums hum_little_tunes|hummed_little_tunes
    skip_along_the_path|skipped_along_the_path play_pretend|played_pretend make_mud_pies|made_mud_pies
    stack_pebbles|stacked_pebbles whistle_with_a_blade_of_grass|whistled_with_a_blade_of_grass
    hop_like_a_frog|hopped_like_a_frog spin_in_circles|spun_in_circles
    look_for_seashells|looked_for_seashells catch_snowflakes|caught_snowflakes
    explore_the_woods|explored_the_woods make_necklaces|made_necklaces
    fold_paper_animals|folded_paper_animals play_tag|played_tag sort_buttons|sorted_buttons
    race_toy_cars|raced_toy_cars wave_at_the_trains|waved_at_the_trains
    listen_to_the_birds|listened_to_the_birds knit_scarves|knitted_scarves solve_riddles|solved_riddles
    learn_new_words|learned_new_words draw_maps|drew_maps write_little_poems|wrote_little_poems
    do_cartwheels|did_cartwheels play_catch|played_catch visit_the_library|visited_the_library
    hunt_for_treasure|hunted_for_treasure decorate_cakes|decorated_cakes sweep_the_porch|swept_the_porch
    water_the_plants|watered_the_plants bounce_on_the_bed|bounced_on_the_bed go_fishing|went_fishing
    ice_skate|ice_skated swim_in_the_lake|swam_in_the_lake play_the_piano|played_the_piano
    juggle_oranges|juggled_oranges tickle_the_cat|tickled_the_cat stomp_in_the_snow|stomped_in_the_snow
    crawl_through_tunnels|crawled_through_tunnels peek_into_bird_nests|peeked_into_bird_nests
    hug_big_trees|hugged_big_trees shake_a_tambourine|shook_a_tambourine
    mix_pancake_batter|mixed_pancake_batter trace_the_shapes_of_leaves|traced_the_shapes_of_leaves
    kick_a_ball|kicked_a_ball scribble_on_paper|scribbled_on_paper gaze_at_the_moon|gazed_at_the_moon
    wiggle_to_music|wiggled_to_music march_like_a_soldier|marched_like_a_soldier
    ask_lots_of_questions|asked_lots_of_questions""",
)
SPOTS = _words(
    """under_a_big_rock behind_a_tall_tree near_the_old_fence under_the_bench beside_a_little_bush
    in_the_long_grass next_to_the_gate under_a_pile_of_leaves behind_the_shed near_the_water
    inside_a_hollow_log on_top_of_a_stump under_a_wooden_bridge by_the_flower_bed in_the_sand
    behind_a_big_bucket near_a_puddle under_a_mushroom between_two_rocks inside_an_old_box
    under_the_slide behind_the_curtain beneath_a_blanket on_a_high_shelf under_the_stairs""",
)
TALL_THINGS = _words(
    "oak_tree apple_tree pine_tree maple_tree willow_tree cherry_tree birch_tree palm_tree chestnut_tree"
)
BAD_FEELINGS = _words(
    """sad upset worried grumpy lonely frustrated unhappy gloomy cross disappointed miserable sorry
    nervous anxious hurt cranky""",
)
GOOD_FEELINGS = _words(
    """happy glad proud thankful excited joyful cheerful relieved delighted grateful calm pleased
    thrilled content""",
)
SCARED_FEELINGS = _words("scared afraid frightened nervous jumpy uneasy")
SOUNDS = _words("thump crash bang rustle squeak splash creak hoot growl rumble buzz croak")
SOUND_CAUSES = _pairs(
    """looking_for_food|hopping_about trying_to_find_its_way_home|looking_for_its_mother
    playing_in_the_leaves|chasing_its_own_tail building_a_nest|gathering_seeds
    hiding_from_the_wind|splashing_in_a_puddle""",
)
FOODS = _words(
    """cookies pancakes apple_pie warm_soup hot_cocoa lemonade sandwiches muffins berries popcorn
    cupcakes banana_bread carrot_cake oatmeal waffles noodles fruit_salad cheese_and_crackers
    honey_toast pudding ice_cream strawberries blueberry_jam pizza gingerbread cinnamon_rolls
    grapes cherries peaches plums mashed_potatoes corn_bread rice_pudding scones pretzels
    biscuits peanut_butter_toast tomato_soup carrot_sticks melon""",
)
FIX_TOOLS = _words("glue tape string thread wire nails paint clay paste stickers")
EXCLAIMS = _words("Wow! Look! Oh! Hooray! Yay! Amazing! Wonderful! Cool!")
ENDINGS = _words(
    """were_the_best_of_friends played_together_every_day shared_everything met_at_the_same_spot_every_week
    always_helped_each_other laughed_about_that_day_for_years told_everyone_the_story""",
)
_VOWEL_SOUND_EXCEPTIONS_A = ("uni", "use", "usu", "eu", "one", "once", "ewe")
_VOWEL_SOUND_EXCEPTIONS_AN = ("hour", "honest", "honor", "heir")


def _a(word: str) -> str:
    """Indefinite article for `word` by its first sound: "an apple", "a unicorn", "an hour"."""
    low = word.lower()
    if low.startswith(_VOWEL_SOUND_EXCEPTIONS_AN):
        return "an"
    if low[:1] in "aeiou" and not low.startswith(_VOWEL_SOUND_EXCEPTIONS_A):
        return "an"
    return "a"


# ---------------------------------------------------------------------------------------------
# Story templates. A story is a list of paragraphs, each a list of units (a sentence, or a line of
# dialogue with its attribution); `{...}` slots are filled from the story's slot dict. Slot names:
# N/F main and friend names; s S o p P x was is: main pronoun forms; fs fS fo fp fP fwas: friend's;
# h/H the helper (relation, address), hs hS: helper pronoun; obj, ao ("a red ball"), oadj; place,
# prep, desc; feelings bad good scared.

_INTRO = (
    "Once upon a time, there was {a_cadj} {cadj} {kind} named {N}. {S} lived {home} with {p} {fam}.",
    "Once upon a time, in a land far away, there lived {a_cadj} {cadj} {kind} called {N}. {S} lived {home}.",
    "There was once {a_cadj} {cadj} {kind} named {N}. {N} lived {home} with {p} {fam}.",
    "{N} was {a_cadj} {cadj} {kind} who lived {home}. {S} lived there with {p} {fam}.",
    "Once there was {a_cadj} {cadj} {kind}. {P} name was {N}. {S} lived {home}.",
)
_LOVES = (
    "{N} loved to {act} and {act2}.",
    "Every day, {N} liked to {act}.",
    "{P} favorite thing to do was to {act}.",
    "More than anything, {N} loved to {act} with {p} {fam}.",
    "{N} liked to {act}, but {s} liked to {act2} even more.",
)
_TRAIT = (
    "Everyone said that {N} was very {cadj}.",
    "{S} {was} always {cadj}, and everyone liked {o}.",
    "",
    "",
    "",
    "",
)
_OUTING = (
    "One {time}, {N} went to the {place} with {p} friend {F}.",
    "One {time}, {N} and {p} best friend {F} went to the {place} to play.",
    "One {time}, {N} asked {F} to come to the {place}.",
    "On {a_time} {time}, {N} and {F} walked to the {place} together.",
)
_FRIEND_DESC = (
    "{F} was {a_fadj} {fadj} {fkind} who liked to {fact}.",
    "{F} was {a_fadj} {fadj} {fkind}, and {fs} always liked to {fact}.",
    "",
    "",
    "",
)
_SCENE = (
    "The {place} had {desc}.",
    "The weather was {weather}, and the sky was {sky}.",
    "It was {a_weather} {weather} day, and the {place} had {desc}.",
    "The sun was shining, and the {place} had {desc}.",
    "",
    "",
    "",
)
_FIND = (
    "{prep_cap} the {place}, {N} saw {ao} {spot}.",
    "Soon, {N} found {ao} {spot}.",
    "{N} looked around and saw {ao} {spot}.",
    "Then {F} pointed at something {spot}. It was {ao}!",
)
_FIND_TALK = (
    '"{excl} Look at this!" said {N}. "It is {ao}!"',
    '"{excl}" said {F}. "What a nice {obj}!"',
    '"Can we keep it?" asked {F}. "Yes," said {N}. "It can be our {obj}."',
    '{N} picked it up and smiled. "I love this {obj}," {s} said.',
)

# Problem types: each one is (problem units, resolution units, morals).
_PROBLEMS: tuple[tuple[tuple[tuple[str, ...], ...], tuple[tuple[str, ...], ...], tuple[str, ...]], ...] = (
    (  # lost
        (
            ("{N} and {F} played with the {obj} for a long time.", ""),
            (
                "Then {N} put the {obj} down to {act}.",
                "Later, {N} put the {obj} on the ground and went to {act}.",
            ),
            ("When {s} came back, the {obj} was gone!", "When {s} turned around, the {obj} was not there!"),
            ("{N} felt very {bad}.", "{N} was so {bad} that {s} started to cry."),
            ('"Where is my {obj}?" {s} cried.', '"Oh no! I lost my {obj}!" said {N}.'),
        ),
        (
            ('"Do not worry, {N}," said {F}. "I will help you look."', '{F} said, "We will find it together."'),
            ("They looked {spot2} and {spot3}.", "The two friends searched {spot2} and {spot3}."),
            (
                "At last, {F} found the {obj} {spot3}!",
                "Finally, they saw the {oadj} {obj} {spot3}!",
            ),
            ('{N} was so {good}. "Thank you, {F}!" {s} said.', '"You found it!" said {N}, and {s} felt {good}.'),
            ("{N} gave {F} a big hug.", "{N} held the {obj} tight and smiled.", ""),
        ),
        ("that good friends always help each other", "that it is important to take good care of the things we love"),
    ),
    (  # stuck up high
        (
            ("{N} and {F} played with the {obj}.", "{N} and {F} took turns with the {obj}.", ""),
            (
                "Suddenly, a strong wind blew the {obj} up into a tall {tall}.",
                "Then {F} threw the {obj} too high, and it got stuck in a tall {tall}.",
            ),
            ("{N} jumped and jumped, but {s} could not reach it.", "{N} tried to climb up, but it was too high.", ""),
            ("{N} felt {bad}.", "{N} began to feel very {bad}."),
            ('"What can we do?" asked {F}.', '"How will we get it down?" asked {N}.'),
        ),
        (
            ("Just then, {N}'s {h} came by.", "Just then, {N} saw {p} {h} walking by."),
            ('"Please help us!" said {N}. "Our {obj} is stuck!"', '"{H}, can you help us?" asked {N}.'),
            ("{H_cap} reached up high and got the {obj} down.", "{H_cap} found a long stick and got the {obj} down."),
            ('"Thank you!" said {N} and {F}.', '"Thank you so much!" said {N}, feeling {good}.'),
            ("{H_cap} smiled and made them some {food}.", "Then {H} took them home for some {food}.", ""),
        ),
        ("that it is okay to ask for help", "that it is best to be careful on windy days"),
    ),
    (  # broken
        (
            ("{N} wanted to show {F} the {obj}.", "{N} wanted to show {F} how special the {obj} was.", ""),
            ("But {s} dropped it, and the {obj} broke into two pieces!", "But the {obj} slipped and broke!"),
            ("{N} felt {bad}. A tear rolled down {p} cheek.", "{N} was very {bad}."),
            ('"My {obj} is broken," said {N}. "Now it is ruined."', '"Oh no!" cried {N}. "My {obj}!"'),
        ),
        (
            ('{F} said, "Do not be {bad}. We can fix it!"', '"I know what to do," said {F}.'),
            ("They took the {obj} to {N}'s {h}.", "They went home and asked {N}'s {h} for help."),
            ("{H_cap} got some {tool}.", "{H_cap} smiled and got some {tool}."),
            (
                "Together, they fixed the {obj}. It looked almost new!",
                "Together, they worked until the {obj} was fixed.",
            ),
            ("{N} felt {good} again.", '"Thank you!" said {N}. {S} felt {good}.', ""),
        ),
        ("that mistakes can be fixed when we work together", "that friends can make a bad day better"),
    ),
    (  # sharing
        (
            ("{F} wanted to play with the {obj} too.", "Soon {F} wanted a turn with the {obj}."),
            ('"Can I have a turn?" asked {F}.', '"Please, can I play with it?" asked {F}.'),
            ('"No! It is mine!" said {N}.', '"No," said {N}. "I found it first!"'),
            ("{F} felt {bad} and sat down alone.", "{F} walked away and sat by {fx}."),
        ),
        (
            ("Then {N} saw that {F} was {bad}.", "After a while, {N} looked at {F}."),
            ("{N} did not feel {good} anymore.", "{S} thought about it for a moment.", ""),
            ('"I am sorry, {F}," said {N}. "Let us take turns."', '"Here, {F}," said {N}. "We can share it."'),
            ("{F} smiled a big smile.", '"Thank you!" said {F}, and {fs} felt {good}.', ""),
            (
                "They took turns with the {obj} and had lots of fun.",
                "They played with the {obj} together all day.",
                "",
            ),
        ),
        ("that sharing makes everyone happy", "that playing together is more fun than playing alone"),
    ),
    (  # fear
        (
            ("Soon the sky grew dark.", "After a while, the sun went down and the shadows grew long."),
            ("Then they heard a loud {sound} {spot2}.", "Suddenly, there was a loud {sound} {spot2}!"),
            ('{N} was {scared}. "What was that?" {s} whispered.', '"What was that?" asked {N}. {S} felt {scared}.'),
            ("{N} held the {obj} close.", "{N} did not want to move.", ""),
        ),
        (
            ("{F} held {N}'s hand.", "{F} was {scared} too, but {fs} took a deep breath."),
            ('"Let us look together," said {F}.', '"We can be brave together," said {F}.'),
            ("They walked slowly and looked {spot2}.", "Step by step, they went closer.", ""),
            ("There they found {a_small} {small}!", "It was only {a_small} {small}!"),
            ("The {small} was just {cause}.", "The little {small} was {cause2}."),
            ('"It was only {a_small} {small}!" said {N}, and they both laughed.', "{N} and {F} laughed and laughed."),
        ),
        ("that things are not always as scary as they seem", "that it is easier to be brave with a friend"),
    ),
    (  # a hurt animal
        (
            ("Then they heard a small cry.", "Just then, they heard a soft little sound."),
            ("It was {a_small} {small} with a hurt {part}.", "They saw {a_small} {small} that had hurt its {part}."),
            ('"Poor little {small}," said {F}.', '"Oh no, it is hurt!" said {N}.'),
            ("{N} felt {bad} for the {small}.", "{N} and {F} felt {bad}.", ""),
        ),
        (
            ("{N} put the {obj} down and gently picked up the {small}.", "{N} carefully picked up the {small}."),
            ("They took it home to {N}'s {h}.", "They carried it to {N}'s {h}."),
            ("{H_cap} wrapped its {part} with a soft cloth.", "{H_cap} helped them make a warm bed for it.", ""),
            (
                "They gave the {small} some water and a few crumbs.",
                "{N} and {F} watched over the {small} all day.",
                "",
            ),
            ("After a few days, the {small} was strong again.", "Soon the {small} was well enough to go home."),
            ('"Goodbye, little {small}!" said {N}.', "{N} waved as the {small} went back outside."),
        ),
        ("that it is good to be kind to animals", "that even small helpers can do big things"),
    ),
    (  # rain ruins the plan
        (
            ("Then dark clouds came, and it began to rain.", "Suddenly, big drops of rain began to fall."),
            ("{N} and {F} had to run inside.", "They ran home as fast as they could.", ""),
            ("{N} felt {bad}.", "{N} looked out the window and felt {bad}."),
            ('"Now we cannot play with the {obj}," said {N}.', '"I wanted to play outside," said {N}.'),
        ),
        (
            ("Then {N}'s {h} had an idea.", "{N}'s {h} came in and smiled."),
            ('"Why not build a fort inside?" {hs} said.', '"Let us make a blanket fort," {hs} said.'),
            (
                "They built a fort with blankets and pillows.",
                "They used chairs, blankets and pillows to make a big fort.",
            ),
            ("They played with the {obj} inside the fort.", "Inside the fort, they played with the {obj}.", ""),
            ("{H_cap} brought them some {food}.", "Later, they ate {food} in the fort.", ""),
            ("{N} felt {good}.", '"This is the best day ever!" said {N}.'),
        ),
        ("that fun can be found anywhere", "that a rainy day can still be a happy day"),
    ),
)
_CLOSING = (
    "From that day on, {N} and {F} {ending}.",
    "That night, {N} went to bed with a big smile.",
    "{N} kept the {obj} in a safe place in {p} room.",
    "When {s} got home, {N} told {p} {fam} all about the day.",
    "",
    "",
)
_MORAL = ("{S} learned {moral}.", "That day, {N} learned {moral}.", "Now {N} knew {moral}.")
_THE_END = ("The end.", "", "", "")

_BASKET = (
    "{N} brought some {food} in a little basket.",
    "{F} brought some {food} to share.",
    "",
    "",
    "",
)
_CRITTER = (
    "{a_critter_cap} {critter} was {critter_doing} nearby.",
    "Nearby, {a_critter} {critter} was {critter_doing}.",
    "",
    "",
)
# One optional detail per outing keeps stories near 150 words (80-210), like TinyStories.
_DETAIL = tuple(t for t in _FRIEND_DESC + _SCENE + _CRITTER + _BASKET if t) + ("",) * 8
_PARAGRAPH_1 = (_INTRO, _LOVES, _TRAIT)
_PARAGRAPH_2 = (_OUTING, _DETAIL, _FIND, _FIND_TALK)
_PARAGRAPH_5 = (_CLOSING, _MORAL, _THE_END)

_Story = list[list[str]]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _draw_slots(rng: random.Random) -> dict[str, str]:
    """Draw every detail of one story (names, object, place, problem) from `rng`.

    A near copy replays its source's draws exactly, overrides one slot, and then renders with
    the same continuing stream; `_render` draws the same number of times whatever the slots hold.
    """
    r = rng.random

    def pick(seq: Sequence[str]) -> str:
        return seq[int(r() * len(seq))]

    g = "fmn"[int(r() * 2.1)]  # 5% singular "they"
    fg = "fmn"[int(r() * 2.1)]
    names = _NAMES[g]
    main = names[int(r() * len(names))]
    fnames = _NAMES[fg]
    friend = fnames[int(r() * len(fnames))]
    while friend == main:
        friend = fnames[int(r() * len(fnames))]
    pro = _PRONOUNS[g]
    fpro = _PRONOUNS[fg]
    kind = pick(_KIND_CHILD[g]) if r() < 0.75 else pick(ANIMALS)
    fkind = pick(_KIND_CHILD[fg]) if r() < 0.6 else pick(ANIMALS)
    cadj = pick(CHARACTER_ADJECTIVES)
    fadj = pick(CHARACTER_ADJECTIVES)
    act, act_past = ACTIVITIES[int(r() * len(ACTIVITIES))]
    act2 = ACTIVITIES[int(r() * len(ACTIVITIES))][0]
    while act2 == act:
        act2 = ACTIVITIES[int(r() * len(ACTIVITIES))][0]
    fact = ACTIVITIES[int(r() * len(ACTIVITIES))][0]
    obj = pick(OBJECTS)
    oadj = pick(OBJECT_ADJECTIVES)
    place, prep, desc = PLACES[int(r() * len(PLACES))]
    h, haddr, hg = HELPERS[int(r() * len(HELPERS))]
    small = pick(SMALL_ANIMALS)
    cause, cause2 = SOUND_CAUSES[int(r() * len(SOUND_CAUSES))]
    time = pick(TIMES)
    weather = pick(WEATHER)
    return {
        "N": main,
        "s": pro[0],
        "S": pro[1],
        "o": pro[2],
        "p": pro[3],
        "P": pro[4],
        "x": pro[5],
        "was": pro[6],
        "is": pro[7],
        "F": friend,
        "fs": fpro[0],
        "fS": fpro[1],
        "fo": fpro[2],
        "fp": fpro[3],
        "fx": fpro[5],
        "fwas": fpro[6],
        "kind": kind,
        "fkind": fkind,
        "cadj": cadj,
        "fadj": fadj,
        "home": pick(HOMES),
        "fam": pick(FAMILY),
        "act": act,
        "act_past": act_past,
        "act2": act2,
        "fact": fact,
        "obj": obj,
        "oadj": oadj,
        "place": place,
        "prep": prep,
        "desc": desc,
        "spot": pick(SPOTS),
        "spot2": pick(SPOTS),
        "spot3": pick(SPOTS),
        "tall": pick(TALL_THINGS),
        "h": h,
        "H": haddr,
        "hs": _PRONOUNS[hg][0],
        "small": small,
        "critter": pick(ANIMALS),
        "critter_doing": pick(ANIMAL_DOINGS),
        "part": pick(ANIMAL_PARTS),
        "cause": cause,
        "cause2": cause2,
        "sound": pick(SOUNDS),
        "time": time,
        "weather": weather,
        "sky": pick(SKY_COLORS),
        "bad": pick(BAD_FEELINGS),
        "good": pick(GOOD_FEELINGS),
        "scared": pick(SCARED_FEELINGS),
        "food": pick(FOODS),
        "tool": pick(FIX_TOOLS),
        "excl": pick(EXCLAIMS),
        "ending": pick(ENDINGS),
        "problem": str(int(r() * len(_PROBLEMS))),
    }


def _derive(slots: dict[str, str]) -> None:
    """Fill the slots computed from others (articles, capitals), after any near-copy override."""
    slots["a_cadj"] = _a(slots["cadj"])
    slots["a_fadj"] = _a(slots["fadj"])
    ao = slots["oadj"] + " " + slots["obj"]
    slots["ao"] = _a(ao) + " " + ao
    slots["a_small"] = _a(slots["small"])
    slots["a_critter"] = _a(slots["critter"])
    slots["a_critter_cap"] = _cap(slots["a_critter"])
    slots["a_time"] = _a(slots["time"])
    slots["a_weather"] = _a(slots["weather"])
    slots["prep_cap"] = _cap(slots["prep"])
    slots["H_cap"] = _cap(slots["H"])


def _render(slots: dict[str, str], rng: random.Random) -> _Story:
    """Turn drawn slots into paragraphs of filled-in units, choosing template variants from `rng`."""
    r = rng.random

    def pick(seq: Sequence[str]) -> str:
        return seq[int(r() * len(seq))]

    problem, resolution, morals = _PROBLEMS[int(slots["problem"])]
    slots["moral"] = pick(morals).format_map(slots)

    def para(stages: Sequence[Sequence[str]]) -> list[str]:
        out = []
        for variants in stages:
            template = variants[int(r() * len(variants))]
            if template:
                out.append(template.format_map(slots))
        return out

    return [para(_PARAGRAPH_1), para(_PARAGRAPH_2), para(problem), para(resolution), para(_PARAGRAPH_5)]


def _join(story: _Story) -> str:
    return "\n".join(" ".join(units) for units in story)


# Near copies change one detail; each entry is (slot, the list its new value comes from). The
# friend's name appears 3-8 times, so swapping it edits up to ~40 of ~160 five-word shingles; the
# other slots appear 1-3 times, leaving room for a dropped sentence as well. Measured over 3 x 90
# copies: 5-gram Jaccard to the source 0.55-0.98, mean 0.88, against ~0.01 for unrelated stories.
_FRIEND_SLOT = "F"
_TWEAKS: tuple[tuple[str, Sequence[str]], ...] = (
    ("oadj", OBJECT_ADJECTIVES),
    ("time", TIMES),
    ("weather", WEATHER),
    ("food", FOODS),
    ("spot", SPOTS),
    ("good", GOOD_FEELINGS),
    ("bad", BAD_FEELINGS),
    ("cadj", CHARACTER_ADJECTIVES),
    ("home", HOMES),
    ("fam", FAMILY),
    (_FRIEND_SLOT, ()),
)


def _near_copy(source_seed: int, copy_seed: int) -> str:
    """A near copy of the story drawn from `source_seed`: one detail swapped, maybe a unit dropped.

    Some slots do not appear in every story (the weather only shows in one of the optional
    details), so tweaks are tried in a random order until the text really changes.
    """
    rng = random.Random(source_seed)
    drawn = _draw_slots(rng)
    state = rng.getstate()
    slots = dict(drawn)
    _derive(slots)
    source = _join(_render(slots, rng))
    edit = random.Random(copy_seed)
    for k in edit.sample(range(len(_TWEAKS)), len(_TWEAKS)):
        slot, pool = _TWEAKS[k]
        if slot == _FRIEND_SLOT:
            # A same-gender name keeps every friend pronoun right.
            pool = next(names for names in _NAMES.values() if drawn[slot] in names)
        new = pool[edit.randrange(len(pool))]
        while new in (drawn[slot], drawn["N"]):
            new = pool[edit.randrange(len(pool))]
        slots = dict(drawn)
        slots[slot] = new
        _derive(slots)
        rng.setstate(state)
        story = _render(slots, rng)
        if _join(story) != source:
            break
    if slot != _FRIEND_SLOT and edit.random() < 0.5:
        # Drop one unit, never a paragraph's first: that keeps the introduction of every name.
        candidates = [(i, j) for i, units in enumerate(story) for j in range(1, len(units))]
        i, j = candidates[edit.randrange(len(candidates))]
        del story[i][j]
    return _join(story)


def _stream(seed: int, split: int, purpose: int) -> random.Random:
    """An independent `random.Random` for (seed, split, purpose), stable across processes."""
    state = np.random.SeedSequence([seed, split, purpose]).generate_state(4, np.uint32)
    return random.Random(int.from_bytes(state.tobytes(), "little"))


def _story_seeds(n: int, seed: int, split: int) -> list[int]:
    rng = _stream(seed, split, _STORY_STREAM)
    return [rng.getrandbits(64) for _ in range(n)]


def _pairs_for(n: int, seed: int, rate: float, split: int) -> list[tuple[int, int]]:
    # round(), not a Bernoulli draw per story: the realised rate is then exact (to 1/n), so
    # tests and dedup recall can rely on it; a copy's source is always an earlier original.
    k = min(max(n - 1, 0), round(rate * n))
    if k == 0:
        return []
    rng = _stream(seed, split, _DUP_STREAM)
    copies = sorted(rng.sample(range(1, n), k))
    copy_set = set(copies)
    originals = [i for i in range(n) if i not in copy_set]
    return [(c, originals[rng.randrange(bisect_left(originals, c))]) for c in copies]


def _generate(n: int, seed: int, rate: float, split: int, tracker: Tracker) -> list[str]:
    seeds = _story_seeds(n, seed, split)
    copy_of = dict(_pairs_for(n, seed, rate, split))
    out: list[str] = []
    with tracker.task("Generating stories", total=n) as task:
        for i, story_seed in enumerate(seeds):
            src = copy_of.get(i)
            if src is None:
                rng = random.Random(story_seed)
                slots = _draw_slots(rng)
                _derive(slots)
                out.append(_join(_render(slots, rng)))
            else:
                out.append(_near_copy(seeds[src], story_seed))
            if (i + 1) % _PROGRESS_CHUNK == 0:
                task.advance(_PROGRESS_CHUNK)
        task.advance(n % _PROGRESS_CHUNK)
    return out


def generate_stories(n: int, seed: int, near_dup_rate: float = 0.03, *, tracker: Tracker = NULL_TRACKER) -> list[str]:
    """Generate `n` training-stream stories for `seed`.

    The same arguments give the same list in any process. The result equals the train split of
    `generate_corpus(CorpusConfig(stories=n, seed=seed, near_dup_rate=near_dup_rate))`.

    Args:
        n: Number of stories (>= 0).
        seed: Non-negative seed.
        near_dup_rate: Share of stories that are near copies of an earlier story, in [0, 1); which
            ones is given by `near_duplicate_pairs(n, seed, near_dup_rate)`.
        tracker: Progress reporting.

    Returns:
        The stories; paragraphs within a story are separated by "\\n".

    Raises:
        UsageError: If an argument is out of range.
    """
    _check_count("n", n, minimum=0)
    _check_seed(seed)
    _check_rate(near_dup_rate)
    return _generate(n, seed, near_dup_rate, TRAIN_SPLIT, tracker)


def near_duplicate_pairs(n: int, seed: int, near_dup_rate: float, *, split: str = "train") -> list[tuple[int, int]]:
    """Which stories of `generate_stories(n, seed, near_dup_rate)` are near copies, and of what.

    Args:
        n: Number of stories, as passed to `generate_stories`.
        seed: The seed, as passed to `generate_stories`.
        near_dup_rate: The rate, as passed to `generate_stories`.
        split: "train" (the default; `generate_stories` and the train split of `generate_corpus`)
            or "val" (the validation split of `generate_corpus`, with n its `val_count`).

    Returns:
        (copy index, source index) pairs sorted by copy index; exactly round(near_dup_rate * n)
        of them (at most n - 1), every source an earlier story that is itself not a copy.

    Raises:
        UsageError: If an argument is out of range.
    """
    _check_count("n", n, minimum=0)
    _check_seed(seed)
    _check_rate(near_dup_rate)
    splits = {"train": TRAIN_SPLIT, "val": VAL_SPLIT}
    if split not in splits:
        raise UsageError(f"split must be 'train' or 'val', got {split!r}")
    return _pairs_for(n, seed, near_dup_rate, splits[split])


def generate_corpus(cfg: CorpusConfig, *, tracker: Tracker = NULL_TRACKER) -> tuple[list[str], list[str]]:
    """Generate the train and validation splits described by `cfg`.

    The splits come from independent streams of the seed, each with its own near copies (see
    `near_duplicate_pairs(..., split=...)`), and share no story text: a validation story that
    happens to equal a training story (never seen in practice; the space of stories is > 10^40)
    is replaced by a fresh one from a third stream.

    Args:
        cfg: Sizes, seed and near-duplicate rate.
        tracker: Progress reporting.

    Returns:
        (train, val) lists of stories.
    """
    train = _generate(cfg.stories, cfg.seed, cfg.near_dup_rate, TRAIN_SPLIT, tracker)
    val = _generate(cfg.val_count, cfg.seed, cfg.near_dup_rate, VAL_SPLIT, tracker)
    seen = set(train)
    spare: random.Random | None = None
    for i, text in enumerate(val):
        while text in seen:
            spare = spare or _stream(cfg.seed, VAL_SPLIT, _REPLACEMENT_STREAM)
            rng = random.Random(spare.getrandbits(64))
            slots = _draw_slots(rng)
            _derive(slots)
            text = _join(_render(slots, rng))
        val[i] = text
    return train, val


def write_corpus(
    store: Store, cfg: CorpusConfig, name: str, *, tracker: Tracker = NULL_TRACKER
) -> tuple[Commit, Commit]:
    """Generate the corpus and publish it as two datasets, `NAME-train` and `NAME-val`.

    The generator version is part of the parameters, so a change to the templates makes new
    versions instead of silently reusing old ones. Ids are `train:<index>` / `val:<index>`.
    """
    cache: dict[str, list[str]] = {}

    def texts_of(split: str) -> list[str]:
        # Both splits come from one generate_corpus call, made only if some split is not stored yet.
        if not cache:
            cache["train"], cache["val"] = generate_corpus(cfg, tracker=tracker)
        return cache[split]

    commits = []
    for split, count in (("train", cfg.stories), ("val", cfg.val_count)):
        params = {
            "stories": cfg.stories,
            "val_stories": cfg.val_count,
            "seed": cfg.seed,
            "near_dup_rate": cfg.near_dup_rate,
            "split": split,
            "generator_version": GENERATOR_VERSION,
        }

        def build(writer: PartWriter, split: str = split, count: int = count) -> dict[str, object]:
            texts = texts_of(split)
            writer.write(pl.DataFrame({ID: [f"{split}:{i}" for i in range(len(texts))], TEXT: texts}))
            pairs = near_duplicate_pairs(count, cfg.seed, cfg.near_dup_rate, split=split)
            return {"stories": len(texts), "near_duplicates": len(pairs), "generator_version": GENERATOR_VERSION}

        commits.append(
            store.commit(
                f"{name}-{split}", operation="corpus", params=params, parents=["builtin:stories"], build=build
            )
        )
    return commits[0], commits[1]
