"""The built-in corpus's sentence templates: five paragraphs of variants with `{slot}` fields, and
the problems (each with its resolution and morals). Change any and bump `generate.GENERATOR_VERSION`.
"""

from __future__ import annotations

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
