"""The built-in corpus's word lists (names, animals, objects, places, feelings, ...), with the
agreement helpers the templates need ("a" / "an"). Change any list and bump
`generate.GENERATOR_VERSION`: the same seed then gives other stories.
"""

from __future__ import annotations

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
