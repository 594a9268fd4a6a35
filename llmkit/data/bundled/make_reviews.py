"""Generator for llmkit's bundled ``reviews`` text-classification dataset.

The dataset is a set of short, synthetic customer reviews (1-3 sentences)
across many domains (restaurants, hotels, electronics, books, films, apps,
clothing, airlines, software, furniture, games, courses, ...) labelled
``negative``, ``mixed`` or ``positive``.  Every text is produced by the small
compositional grammar in this file; nothing is copied from an existing corpus
and nothing is downloaded.

The grammar is built so that the label depends on *composition*, not on the
presence of individual words:

* negation flips opinion words ("not bad at all", "never once rude",
  "hardly worth it", "far from comfortable");
* in contrast reviews the emphatic clause after "but"/"however" decides,
  followed by a consequence ("the staff were lovely, but the room was
  incredibly musty and we checked out a day early") or a polarity-neutral
  tail ("..., and that's what tipped the balance"), so the same opinion words
  occur under both labels in the other order;
* concessive clauses ("although ...", "despite ...") are discounted;
* mixed reviews weigh a pro against a con with the same connectors and a
  balanced tail ("..., and neither outweighed the other");
* expectation reversals, sarcasm and back-handed praise put positive words in
  negative reviews and negative words in positive ones.

Generation is pure standard library and fully deterministic for a given seed
(it never iterates over sets, so it does not depend on ``PYTHONHASHSEED``).

Regenerate the shipped files with::

    python -m llmkit.data.bundled.make_reviews

(or ``python llmkit/data/bundled/make_reviews.py`` from the repository root),
which writes ``reviews/train.jsonl`` and ``reviews/test.jsonl`` next to this
file: one JSON object ``{"text": ..., "label": ...}`` per line, UTF-8.
"""

from __future__ import annotations

import random
from pathlib import Path

from llmkit.data.bundled import to_jsonl, write_splits  # noqa: F401  (to_jsonl: the shipped serialisation, used by the tests)

LABELS = ("negative", "mixed", "positive")
SEED = 0
N_TRAIN_PER_LABEL = 534  # 1602 train rows in total
N_TEST_PER_LABEL = 134  # 402 test rows in total
MIN_WORDS, MAX_WORDS = 8, 45
OUT_DIR = Path(__file__).resolve().parent / "reviews"

# ---------------------------------------------------------------------------
# Lexicon
# ---------------------------------------------------------------------------

# Generic opinion adjectives, mixed into the aspect-specific ones.
POS_ADJ = ["excellent", "great", "superb", "wonderful", "fantastic", "impressive",
           "outstanding", "lovely", "brilliant", "first-rate", "solid", "terrific"]
NEG_ADJ = ["terrible", "awful", "poor", "disappointing", "dreadful", "shoddy",
           "abysmal", "frustrating", "lousy", "subpar", "miserable"]
MID_ADJ = ["okay", "fine", "average", "passable", "acceptable", "serviceable",
           "so-so", "adequate", "unremarkable", "alright", "middling", "ordinary",
           "decent enough", "nothing special", "hit and miss", "fine, if unremarkable",
           "good in places and weak in others", "neither great nor awful"]
STRONG = ["really", "incredibly", "genuinely", "truly", "remarkably", "seriously",
          "extremely", "very", "exceptionally"]
MILD = ["pretty", "fairly", "quite", "reasonably", "rather"]
# Adjectives that read badly after an intensifier ("very excellent").
NON_GRADABLE = ["excellent", "great", "superb", "outstanding", "first-rate", "terrific", "perfect",
                "fantastic", "brilliant", "terrible", "awful", "abysmal", "dreadful", "ideal",
                "useless", "nonexistent", "inedible", "flawless", "immaculate", "spotless", "broken"]
# Polarity-neutral tails that mark the clause before them as the one that counts.
ANCHORS = ["and that is what I'll remember", "and that's what matters in the end", "which is what really counts",
           "and that outweighed everything else", "and that decided it for me", "and that's the part that stuck with me",
           "and that's what tipped the balance", "and in the end that was all I cared about"]
# ... and tails that reuse those words but leave the two sides balanced.
MIX_ANCHORS = ["and neither outweighed the other", "and I can't say which matters more in the end",
               "and in the end the two cancelled each other out", "and I honestly can't decide which counts for more",
               "and it's hard to say which tipped the balance", "and neither one decided it for me",
               "and both stuck with me about equally", "and I'll remember both"]
# Negation patterns used to express either polarity ("wasn't rude at all",
# "I wouldn't call the plot clever"): {n} noun, {c} negated copula, {cp} copula.
NEGATIONS = ["{n} {c} {a}", "{n} {c} {a} at all", "{n} {c} remotely {a}", "{n} {cp} never {a}",
             "{n} {cp} by no means {a}", "{n} {cp} far from {a}", "I wouldn't call {n} {a}",
             "nobody would describe {n} as {a}", "I can't say {n} {cp} {a}", "{n} {c} particularly {a}",
             "{n} {cp} anything but {a}", "{n} {c} in any way {a}"]
# Emphatic negations, for a clause that decides the review.
NEGATIONS_STRONG = ["{n} {c} {a} at all", "{n} {c} remotely {a}", "{n} {c} in any way {a}",
                    "{n} {cp} by no means {a}", "{n} {cp} far from {a}", "{n} {cp} anything but {a}",
                    "nobody would describe {n} as {a}"]
DEGREE_WORDS = ["particularly", "exactly", "remotely", "the least bit", "anywhere near", "what I'd call"]
CONNECTORS = [", but ", ". However, ", ", yet ", ". That said, ", ". But ", ". Then again, ", "; on the other hand, "]

# A domain: how to refer to the thing reviewed, the tense reviews use, neutral
# context sentences, domain consequences, and aspects.  An aspect is
# (noun phrase, plural?, positive predicates, negative predicates); predicates
# starting with "+" are full verb phrases (already conjugated), the others are
# adjective phrases used after the copula.
DOMAINS = {
    "restaurant": dict(
        items=["this place", "this restaurant", "this bistro", "the restaurant"],
        again="eat here again", regret="coming here", past=True,
        context=["We came here for a birthday dinner.", "Went on a Friday night with two friends.",
                 "Booked a table for four on a Saturday.", "We stopped in for a late lunch.",
                 "First visit, after a friend's suggestion."],
        pos_cons=["we have already booked again", "we stayed for a second round of dessert",
                  "I have told everyone I know about it"],
        neg_cons=["we left before the mains arrived", "we ended up eating somewhere else",
                  "I asked for the bill halfway through"],
        aspects=[("the food", False, ["delicious", "fresh", "beautifully cooked", "flavourful",
                                      "+arrived hot and perfectly seasoned"],
                  ["bland", "cold", "greasy", "overcooked", "tasteless", "+arrived lukewarm and soggy"]),
                 ("the staff", True, ["friendly", "attentive", "welcoming", "charming"],
                  ["rude", "dismissive", "clueless", "unfriendly", "+ignored us for twenty minutes"]),
                 ("the service", False, ["quick", "attentive", "warm", "efficient"],
                  ["slow", "chaotic", "careless", "sloppy"]),
                 ("the portions", True, ["generous", "hearty"], ["tiny", "stingy"]),
                 ("the dessert", False, ["heavenly", "rich", "perfect"], ["stale", "sickly", "forgettable"]),
                 ("the prices", True, ["reasonable", "fair"], ["outrageous", "steep", "absurd"]),
                 ("the atmosphere", False, ["cosy", "relaxed", "lively"], ["loud", "cramped", "gloomy"])]),
    "hotel": dict(
        items=["this hotel", "the hotel", "this place", "this resort"],
        again="stay here again", regret="booking this hotel", past=True,
        context=["We stayed three nights for a conference.", "Booked a weekend away for our anniversary.",
                 "I stayed here on a business trip.", "Two nights with the kids in August."],
        pos_cons=["we have already booked our next stay", "we extended our stay by two nights",
                  "I left a big tip for the cleaners"],
        neg_cons=["we checked out a day early", "I asked to change rooms twice",
                  "we demanded a partial refund"],
        aspects=[("the room", False, ["spotless", "spacious", "quiet", "comfortable"],
                  ["filthy", "tiny", "noisy", "musty", "+smelled of smoke"]),
                 ("the bed", False, ["comfortable", "huge", "cosy"], ["lumpy", "hard", "saggy"]),
                 ("the staff", True, ["helpful", "friendly", "welcoming", "lovely"],
                  ["rude", "unhelpful", "indifferent", "+forgot our booking"]),
                 ("the breakfast", False, ["generous", "delicious", "varied"], ["sad", "meagre", "cold"]),
                 ("the location", False, ["ideal", "central", "convenient"], ["remote", "inconvenient", "sketchy"]),
                 ("the bathroom", False, ["modern", "clean", "spotless"], ["mouldy", "grimy", "dated"]),
                 ("the wifi", False, ["fast", "reliable"], ["useless", "patchy", "+kept dropping out"]),
                 ("the pool", False, ["gorgeous", "warm", "clean"], ["murky", "freezing", "tiny"])]),
    "headphones": dict(
        items=["these headphones", "this pair", "this headset", "them"],
        again="buy them again", regret="buying these", past=False,
        context=["I use these on my daily commute.", "Bought these for the gym.",
                 "Picked these up on sale last month.", "I've had these for about six weeks."],
        pos_cons=["I bought a second pair for my partner", "I have retired my old pair for good"],
        neg_cons=["I sent them back within a week", "I went back to my old pair",
                  "I asked the shop for a refund"],
        aspects=[("the sound", False, ["crisp", "rich", "balanced", "detailed"],
                  ["muddy", "tinny", "harsh", "flat"]),
                 ("the battery", False, ["+lasts all week", "+easily gets me through two days"],
                  ["+dies before lunch", "+drains overnight"]),
                 ("the build quality", False, ["sturdy", "premium", "solid"], ["flimsy", "cheap", "creaky"]),
                 ("the noise cancelling", False, ["effective", "impressive", "superb"], ["weak", "useless", "patchy"]),
                 ("the fit", False, ["comfortable", "snug", "secure"], ["painful", "loose", "tight"]),
                 ("the companion app", False, ["intuitive", "handy"], ["buggy", "clunky", "+crashes constantly"]),
                 ("the microphone", False, ["clear", "dependable"], ["muffled", "useless", "crackly"])]),
    "laptop": dict(
        items=["this laptop", "this machine", "the laptop", "it"],
        again="buy this brand again", regret="buying this laptop", past=False,
        context=["I use it mostly for coding and video calls.", "Bought it for university.",
                 "It replaced a five-year-old machine.", "I've used it daily for two months."],
        pos_cons=["I ordered another one for work", "I have stopped looking at other models"],
        neg_cons=["I returned it after ten days", "I am already shopping for a replacement"],
        aspects=[("the screen", False, ["bright", "sharp", "gorgeous", "vivid"], ["dim", "washed out", "grainy"]),
                 ("the keyboard", False, ["comfortable", "responsive", "quiet"], ["mushy", "cramped", "+sticks constantly"]),
                 ("the battery life", False, ["excellent", "+lasts a full working day"], ["pathetic", "+barely lasts three hours"]),
                 ("the fans", True, ["silent", "quiet"], ["loud", "whiny", "+never stop spinning"]),
                 ("the performance", False, ["snappy", "fast", "smooth"], ["sluggish", "laggy", "slow"]),
                 ("the trackpad", False, ["smooth", "precise", "responsive"], ["jumpy", "unreliable", "imprecise"])]),
    "book": dict(
        items=["this book", "this novel", "the book", "it"],
        again="read more by this author", regret="buying this book", past=True,
        context=["I read this for my book club.", "Picked it up at the airport.",
                 "A friend lent me her copy.", "I finished it over a long weekend."],
        pos_cons=["I stayed up until three to finish it", "I ordered the sequel straight away"],
        neg_cons=["I gave up halfway through", "I donated it the next morning"],
        aspects=[("the plot", False, ["gripping", "clever", "original", "tight"], ["predictable", "muddled", "thin", "dull"]),
                 ("the characters", True, ["vivid", "believable", "memorable"], ["flat", "wooden", "annoying"]),
                 ("the prose", False, ["elegant", "vivid", "lyrical"], ["clumsy", "overwritten", "lifeless"]),
                 ("the ending", False, ["satisfying", "moving", "perfect"], ["rushed", "baffling", "lazy"]),
                 ("the pacing", False, ["brisk", "perfect", "well judged"], ["glacial", "uneven", "sluggish"]),
                 ("the dialogue", False, ["sharp", "natural", "witty"], ["stilted", "clunky", "cringeworthy"])]),
    "film": dict(
        items=["this film", "this movie", "the film", "it"],
        again="watch it again", regret="paying to see this", past=True,
        context=["Saw it on opening night.", "We watched it at home on a rainy Sunday.",
                 "I went in knowing nothing about it.", "Watched it with my teenage kids."],
        pos_cons=["I went back to see it a second time", "we talked about it all the way home"],
        neg_cons=["we walked out after an hour", "I fell asleep before the end"],
        aspects=[("the acting", False, ["superb", "convincing", "nuanced"], ["wooden", "hammy", "stiff"]),
                 ("the script", False, ["sharp", "witty", "smart"], ["clumsy", "lazy", "incoherent"]),
                 ("the soundtrack", False, ["haunting", "gorgeous", "memorable"], ["intrusive", "grating", "forgettable"]),
                 ("the cinematography", False, ["stunning", "beautiful", "striking"], ["murky", "drab", "shaky"]),
                 ("the ending", False, ["powerful", "satisfying", "clever"], ["rushed", "silly", "baffling"]),
                 ("the special effects", True, ["seamless", "spectacular", "convincing"], ["cheap", "cheesy", "distracting"]),
                 ("the pacing", False, ["tight", "brisk"], ["sluggish", "bloated", "plodding"])]),
    "app": dict(
        items=["this app", "the app", "it"],
        again="pay for the premium tier", regret="paying for the subscription", past=False,
        context=["I use it to track my budget.", "I've used this app for a few months now.",
                 "Downloaded it on a friend's recommendation.", "Our team switched to it in spring."],
        pos_cons=["I upgraded to the paid plan", "I got my whole family to install it"],
        neg_cons=["I uninstalled it the same day", "I cancelled my subscription",
                  "I went back to a paper notebook"],
        aspects=[("the interface", False, ["clean", "intuitive", "polished"], ["cluttered", "confusing", "ugly"]),
                 ("the notifications", True, ["useful", "timely", "well judged"], ["spammy", "relentless", "useless"]),
                 ("the sync", False, ["instant", "seamless", "reliable"], ["broken", "flaky", "+loses my data"]),
                 ("the support team", False, ["responsive", "helpful", "patient"], ["useless", "unreachable", "+never replies"]),
                 ("the latest update", False, ["smooth", "welcome", "+fixed every issue I had"],
                  ["buggy", "disastrous", "+broke half the features"]),
                 ("the subscription price", False, ["fair", "reasonable"], ["steep", "greedy", "absurd"]),
                 ("the login", False, ["painless", "quick"], ["tedious", "+fails half the time"])]),
    "clothing": dict(
        items=["this jacket", "this shirt", "these jeans", "this dress", "it"],
        again="order from this brand again", regret="ordering this", past=False,
        context=["I ordered my usual size.", "Bought it for a wedding.", "I've worn it about ten times now.",
                 "It was a birthday present to myself."],
        pos_cons=["I ordered it in two more colours", "I wear it every chance I get"],
        neg_cons=["I sent it back the next day", "it went straight into the charity bag"],
        aspects=[("the fabric", False, ["soft", "thick", "luxurious", "breathable"], ["scratchy", "thin", "cheap", "itchy"]),
                 ("the fit", False, ["perfect", "flattering", "true to size"], ["awkward", "boxy", "+runs two sizes small"]),
                 ("the stitching", False, ["neat", "sturdy", "immaculate"], ["sloppy", "loose", "+came apart after one wash"]),
                 ("the colour", False, ["rich", "gorgeous", "+looks exactly like the photos"], ["dull", "faded", "+looks nothing like the photos"]),
                 ("the zip", False, ["smooth", "sturdy"], ["stiff", "flimsy", "+broke within a week"]),
                 ("the price", False, ["fair", "reasonable"], ["steep", "ridiculous"])]),
    "airline": dict(
        items=["this airline", "them", "this carrier"],
        again="fly with them again", regret="booking with this airline", past=True,
        context=["I flew with them to Lisbon last month.", "Short flight, about two hours.",
                 "We flew overnight with two small children.", "A return trip for work in March."],
        pos_cons=["I have already booked my next trip with them", "I switched my loyalty card to them"],
        neg_cons=["I filed a complaint as soon as we landed", "I have booked my next trip with a rival"],
        aspects=[("the crew", True, ["friendly", "professional", "attentive"], ["rude", "surly", "invisible"]),
                 ("the seats", True, ["roomy", "comfortable"], ["cramped", "filthy", "+barely reclined"]),
                 ("the boarding", False, ["smooth", "quick", "orderly"], ["chaotic", "endless", "disorganised"]),
                 ("the food", False, ["tasty", "decent", "surprisingly good"], ["inedible", "sad", "stale"]),
                 ("the flight", False, ["on time", "smooth", "+landed early"], ["delayed", "bumpy", "+was delayed four hours"]),
                 ("the check-in", False, ["painless", "quick"], ["slow", "confusing", "+took over an hour"]),
                 ("the legroom", False, ["generous", "ample"], ["nonexistent", "miserable"])]),
    "software": dict(
        items=["this library", "this tool", "the package", "it"],
        again="use it on the next project", regret="adopting this tool", past=False,
        context=["We use it in production at work.", "I evaluated it for a side project.",
                 "Our team migrated to it last quarter.", "I've been using it for about a year."],
        pos_cons=["we rolled it out to every team", "I have dropped the alternatives entirely"],
        neg_cons=["we ripped it out after a sprint", "we rolled back to the old version"],
        aspects=[("the documentation", False, ["thorough", "clear", "well organised"], ["sparse", "outdated", "confusing"]),
                 ("the installer", False, ["painless", "quick"], ["broken", "+fails on a clean machine"]),
                 ("the API", False, ["elegant", "consistent", "intuitive"], ["clunky", "inconsistent", "baffling"]),
                 ("the performance", False, ["fast", "snappy", "impressive"], ["sluggish", "slow", "unpredictable"]),
                 ("the error messages", True, ["helpful", "clear", "precise"], ["cryptic", "useless", "misleading"]),
                 ("the license cost", False, ["fair", "modest"], ["steep", "outrageous"]),
                 ("the community", False, ["helpful", "welcoming", "active"], ["hostile", "dead", "unhelpful"])]),
    "furniture": dict(
        items=["this sofa", "this desk", "this bookcase", "this chair", "it"],
        again="buy from them again", regret="buying this", past=False,
        context=["It went into our small living room.", "I assembled it on my own in an afternoon.",
                 "We bought it when we moved flats.", "It arrived about a month ago."],
        pos_cons=["we ordered the matching armchair", "I have recommended it to all my neighbours"],
        neg_cons=["it is already back in its box", "I am arranging a collection for a refund"],
        aspects=[("the instructions", True, ["clear", "simple"], ["baffling", "useless", "+skip half the steps"]),
                 ("the frame", False, ["sturdy", "solid", "rock solid"], ["wobbly", "flimsy", "+creaks constantly"]),
                 ("the cushions", True, ["plush", "comfortable", "supportive"], ["lumpy", "hard", "+went flat in a week"]),
                 ("the finish", False, ["flawless", "elegant", "smooth"], ["scratched", "patchy", "cheap-looking"]),
                 ("the fabric", False, ["soft", "durable"], ["scratchy", "thin", "+pills already"]),
                 ("the delivery", False, ["prompt", "careful"], ["late", "careless", "+took five weeks"])]),
    "game": dict(
        items=["this game", "the game", "it"],
        again="buy the sequel", regret="buying this game", past=False,
        context=["I've put about forty hours into it.", "I play mostly with friends online.",
                 "Bought it at launch.", "Played it on a mid-range PC."],
        pos_cons=["I have already started a second playthrough", "I bought copies for two friends"],
        neg_cons=["I asked for a refund after two hours", "I uninstalled it after the first weekend"],
        aspects=[("the graphics", True, ["gorgeous", "stunning", "detailed"], ["muddy", "dated", "ugly"]),
                 ("the controls", True, ["tight", "responsive", "intuitive"], ["clunky", "floaty", "unresponsive"]),
                 ("the story", False, ["gripping", "moving", "clever"], ["nonsensical", "dull", "forgettable"]),
                 ("the multiplayer", False, ["addictive", "stable", "fun"], ["broken", "laggy", "empty"]),
                 ("the load times", True, ["short", "quick"], ["endless", "painful", "long"]),
                 ("the difficulty", False, ["well balanced", "fair"], ["punishing", "unfair", "erratic"]),
                 ("the soundtrack", False, ["epic", "catchy", "atmospheric"], ["repetitive", "grating"])]),
    "course": dict(
        items=["this course", "the course", "this class", "it"],
        again="take another course from them", regret="signing up", past=True,
        context=["I took it online over eight weeks.", "My employer paid for it.",
                 "I signed up to switch careers.", "I did it alongside a full-time job."],
        pos_cons=["I signed up for the advanced module right away", "I landed a new role soon after"],
        neg_cons=["I dropped out after week three", "I asked for my money back"],
        aspects=[("the instructor", False, ["engaging", "knowledgeable", "inspiring", "patient"],
                  ["boring", "condescending", "disorganised", "+read straight from the slides"]),
                 ("the lectures", True, ["clear", "engaging", "well structured"], ["dull", "rambling", "confusing"]),
                 ("the exercises", True, ["challenging", "practical", "useful"], ["trivial", "pointless", "tedious"]),
                 ("the materials", True, ["thorough", "up to date", "polished"], ["outdated", "sloppy", "thin"]),
                 ("the pace", False, ["perfect", "comfortable", "well judged"], ["frantic", "glacial", "uneven"]),
                 ("the feedback", False, ["detailed", "prompt", "constructive"], ["vague", "slow", "nonexistent"])]),
    "coffee shop": dict(
        items=["this cafe", "this coffee shop", "the cafe", "this place"],
        again="come back", regret="stopping here", past=True,
        context=["I popped in before work.", "We spent a rainy afternoon here.",
                 "I came here to work on my laptop.", "Stopped by on a Sunday morning."],
        pos_cons=["I have come back every morning since", "I bought a bag of their beans on the way out"],
        neg_cons=["I poured the coffee away outside", "I left without finishing my cup"],
        aspects=[("the coffee", False, ["smooth", "rich", "perfect", "strong"], ["burnt", "bitter", "watery", "lukewarm"]),
                 ("the pastries", True, ["fresh", "flaky", "delicious"], ["stale", "dry", "soggy"]),
                 ("the barista", False, ["friendly", "skilled", "chatty"], ["rude", "grumpy", "careless"]),
                 ("the seating", False, ["comfy", "cosy", "plentiful"], ["cramped", "hard", "scarce"]),
                 ("the wifi", False, ["fast", "reliable"], ["useless", "slow"]),
                 ("the prices", True, ["fair", "reasonable"], ["steep", "silly"])]),
    "gym": dict(
        items=["this gym", "the gym", "this club"],
        again="renew my membership", regret="signing up here", past=False,
        context=["I go about four times a week.", "I joined in January like everyone else.",
                 "I train here before work.", "Been a member for six months."],
        pos_cons=["I signed my partner up as well", "I have renewed for another year"],
        neg_cons=["I cancelled my membership", "I am moving to the gym across town"],
        aspects=[("the equipment", False, ["modern", "well maintained", "plentiful"], ["broken", "ancient", "+is always out of order"]),
                 ("the trainers", True, ["knowledgeable", "motivating", "friendly"], ["pushy", "clueless", "absent"]),
                 ("the changing rooms", True, ["spotless", "spacious"], ["filthy", "cramped", "smelly"]),
                 ("the classes", True, ["fun", "varied", "challenging"], ["overcrowded", "boring", "+get cancelled constantly"]),
                 ("the membership fee", False, ["fair", "reasonable"], ["extortionate", "steep"]),
                 ("the opening hours", True, ["generous", "convenient"], ["limited", "awkward"])]),
    "car rental": dict(
        items=["this rental company", "them", "this company"],
        again="rent from them again", regret="renting from them", past=True,
        context=["We rented a car for a week in Spain.", "I needed a car for a weekend trip.",
                 "Picked the car up at the airport.", "A one-way rental for a house move."],
        pos_cons=["I have already reserved a car for our next holiday", "I recommended them to my colleagues"],
        neg_cons=["I disputed the charge with my bank", "I filed a formal complaint"],
        aspects=[("the car", False, ["clean", "new", "spotless", "reliable"], ["filthy", "battered", "unsafe"]),
                 ("the pickup", False, ["quick", "painless", "smooth"], ["chaotic", "slow", "+took two hours"]),
                 ("the staff", True, ["helpful", "friendly", "honest"], ["pushy", "rude", "dishonest"]),
                 ("the paperwork", False, ["simple", "quick"], ["endless", "confusing"]),
                 ("the price", False, ["fair", "competitive", "+matched the quote exactly"],
                  ["inflated", "+was full of hidden fees"]),
                 ("the return", False, ["easy", "quick"], ["stressful", "+turned into an argument"])]),
    "blender": dict(
        items=["this blender", "the blender", "this machine", "it"],
        again="buy this brand again", regret="buying this blender", past=False,
        context=["I use it for smoothies most mornings.", "It replaced a cheap one that died.",
                 "Bought it during a sale.", "I've had it for about three months."],
        pos_cons=["I bought one for my sister too", "I use it every single day"],
        neg_cons=["it went back to the shop in its box", "I am back to my old blender"],
        aspects=[("the motor", False, ["powerful", "quiet", "strong"], ["weak", "deafening", "+overheats quickly"]),
                 ("the jug", False, ["sturdy", "solid"], ["flimsy", "+cracked in a month", "+leaks from the base"]),
                 ("the lid", False, ["secure", "tight-fitting"], ["loose", "+pops off mid-blend"]),
                 ("the settings", True, ["handy", "simple", "versatile"], ["pointless", "confusing"]),
                 ("the cleaning", False, ["easy", "quick", "effortless"], ["tedious", "awkward"]),
                 ("the blades", True, ["sharp", "effective"], ["blunt", "useless"])]),
}

OPENERS = ["Honestly,", "To be honest,", "Well,", "So,", "Frankly,", "In short,", "Truthfully,", "Look,"]

# Verdicts: ``{item}``, ``{again}`` and ``{regret}`` are filled per domain.  A
# leading "!" marks an absolute verdict ("No complaints whatsoever."), used only
# in reviews that do not also mention the opposite opinion.
VERDICTS = {
    "positive": [
        "I'd recommend {item} to anyone.", "Highly recommended.", "Worth every penny.",
        "I'd happily {again}.", "I will definitely {again}.", "Five stars from me.",
        "A real gem.", "Absolutely loved it.", "Far better than average.",
        "More than just fine - it was a delight.", "Very happy with it overall.",
        "It exceeded every expectation I had.", "!Ten out of ten.",
        # negation-carried praise
        "Not bad at all.", "I was never once disappointed.", "I couldn't be happier.",
        "I can't recommend {item} enough.", "I wouldn't hesitate to {again}.",
        "!No complaints whatsoever.", "!Nothing to complain about.", "!I honestly can't fault it.",
        "!I have nothing bad to say about {item}.", "You won't regret it.",
        "I can't say enough good things about {item}.", "!Couldn't have asked for more.",
        "!Hard to find anything wrong with it.", "Not a single regret.",
    ],
    "negative": [
        "Avoid.", "Save your money.", "A complete waste of money.", "One star, and that's generous.",
        "I regret {regret}.", "Stay away.", "Really disappointing overall.", "!Below average in every way.",
        "Fine? Hardly.", "A huge letdown.", "I want my money back.", "Thoroughly disappointed.",
        "Calling it average would be generous.",
        # negated praise
        "I would not recommend {item}.", "I wouldn't recommend it to anyone.", "Not worth the money.",
        "Hardly worth it.", "Never again.", "I can't say I enjoyed it.", "I won't {again}.",
        "Not even close to worth the price.", "I couldn't recommend it in good conscience.",
        "Not impressed.", "!I didn't like it one bit.", "!Nothing about it was good value.",
        "Not what I'd call a bargain.",
    ],
    "mixed": [
        "Three stars.", "Okay overall, I guess.", "A mixed bag.", "Mixed feelings overall.",
        "It does the job, nothing more.", "Fine for the price.", "Worth it only at a discount.",
        "Average, really.", "Somewhere in the middle.", "Some good, some bad.",
        "I'm on the fence about {item}.", "Decent, but I expected more.",
        "It balances out, more or less.", "Good in parts.", "Passable overall.",
        # hedged / negated middle
        "Not great, not terrible.", "Not bad, but not great either.", "Nothing to write home about.",
        "Nothing special, but nothing awful either.", "Not sure I'd {again}.",
        "Not the best, not the worst.", "Neither impressed nor disappointed.",
        "I can't decide whether I liked it.", "Could have been better, could have been worse.",
        "I might {again}, I might not.", "I wouldn't rave about it, but I wouldn't warn anyone off either.",
    ],
}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def low(s: str) -> str:
    """Lower-case the first letter unless the sentence starts with 'I'."""
    if s.startswith("I ") or s.startswith("I'"):
        return s
    return s[:1].lower() + s[1:]


def copula(dom: dict, plural: bool, neg: bool = False, rng: random.Random | None = None) -> str:
    word = ("were" if plural else "was") if dom["past"] else ("are" if plural else "is")
    if neg:
        if rng is not None and rng.random() < 0.5:
            return word + "n't"
        return word + " not"
    return word


def flip(label: str) -> str:
    return {"positive": "negative", "negative": "positive"}[label]


class Gen:
    """Builds one review at a time from a domain and a target label."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    # -- lexical choices ---------------------------------------------------
    def adjs(self, asp, pol):
        """Adjective (non-VP) predicates for an aspect, with generic fillers."""
        own = [p for p in (asp[2] if pol == "positive" else asp[3]) if not p.startswith("+")]
        generic = POS_ADJ if pol == "positive" else NEG_ADJ
        return own if own and self.rng.random() < 0.7 else generic

    def aspects(self, dom, k):
        return self.rng.sample(dom["aspects"], k)

    def verdict(self, dom, label, absolute=True):
        pool = [v for v in VERDICTS[label] if absolute or not v.startswith("!")]
        v = self.rng.choice(pool).lstrip("!")
        return v.format(item=self.rng.choice(dom["items"]), again=dom["again"], regret=dom["regret"])

    def maybe_verdict(self, sents, dom, label, p, absolute=False):
        if self.rng.random() < p:
            sents.append(self.verdict(dom, label, absolute))
        return sents

    # -- clauses -----------------------------------------------------------
    def clause(self, dom, asp, pol, strong=False, negated=None):
        """An aspect clause such as 'the staff were never once rude'.

        ``pol`` is the clause's meaning (positive, negative or mixed).  Polar
        meanings are often expressed by negating the opposite polarity, with
        the negator kept away from the adjective ("wasn't exactly friendly",
        "I wouldn't call the room noisy"), so that word n-grams alone do not
        settle the polarity.  ``strong`` asks for an emphatic clause (strong
        intensifier, or an emphatic negation such as "wasn't rude at all").
        """
        r, noun, plural = self.rng, asp[0], asp[1]
        cop = copula(dom, plural)
        if pol == "mixed":
            pa, na = r.choice(self.adjs(asp, "positive")), r.choice(self.adjs(asp, "negative"))
            pron = "they" if plural else "it"
            return r.choice([
                f"{noun} {cop} {r.choice(MID_ADJ)}",
                f"{noun} {cop} {r.choice(MID_ADJ)}",
                f"{noun} {cop} {pa} at times and {na} at others",
                f"{noun} {copula(dom, plural, True, r)} {pa}, but {pron} {copula(dom, plural, True, r)} {na} either",
                f"{noun} {cop} neither {pa} nor {na}",
                f"{noun} {cop} {pa} in some ways and {na} in others",
            ])
        if r.random() < 0.12:
            return self.mid_polar(dom, asp, pol)
        vps = [p[1:] for p in (asp[2] if pol == "positive" else asp[3]) if p.startswith("+")]
        if negated is None:
            negated = r.random() < 0.45
        if not negated:
            if vps and r.random() < 0.3:
                return f"{noun} {r.choice(vps)}"
            adj = r.choice(self.adjs(asp, pol))
            if " " not in adj and adj not in NON_GRADABLE and (strong or r.random() < 0.5):
                adj = f"{r.choice(STRONG if strong or r.random() < 0.6 else MILD)} {adj}"
            return f"{noun} {cop} {adj}"
        # Expressed by negating the opposite polarity.  Most negation patterns
        # are shared by both directions, so a negator says nothing by itself.
        opp = r.choice(self.adjs(asp, flip(pol)))
        more = "couldn't have been" if dom["past"] else "couldn't be"
        if strong:
            pats = NEGATIONS_STRONG
        elif r.random() < 0.75:
            pats = NEGATIONS
        elif pol == "negative":
            pats = ["{n} {c} exactly {a}", "{n} {c} what I'd call {a}", "{n} {c} anywhere near {a}",
                    "{n} {cp} hardly {a}"]
            if " " not in opp and opp not in NON_GRADABLE:
                pats = pats + ["{n} " + more + " less {a}"]
        else:
            pats = ["{n} {c} the least bit {a}", "{n} {cp} never once {a}", "{n} {c} {a} in the slightest"]
            pa = r.choice(self.adjs(asp, "positive"))
            if " " not in pa and pa not in NON_GRADABLE and r.random() < 0.3:
                return f"{noun} {more} more {pa}"
        if opp in NON_GRADABLE:  # "not particularly excellent" reads badly
            pats = [p for p in pats if not any(w in p for w in DEGREE_WORDS)] or ["{n} {c} {a}"]
        return r.choice(pats).format(n=noun, c=copula(dom, plural, True, r), cp=cop, a=opp)

    def mid_polar(self, dom, asp, pol):
        """A polar clause built from middling words ("not even okay", "far better than average")."""
        r, noun, plural = self.rng, asp[0], asp[1]
        cop = copula(dom, plural)
        if pol == "positive":
            pats = ["{n} {cp} anything but ordinary", "{n} {cp} far better than average",
                    "{n} {cp} more than just {m}", "{n} {cp} not merely {m} but {s} {a}",
                    "calling {n} {m} would be an understatement"]
        else:
            pats = ["{n} {c} even {m}", "{n} {cp} well below average", "{n} {cp} barely {m}",
                    "{n} {cp} a long way short of {m}", "calling {n} {m} would be generous"]
        a = r.choice([x for x in self.adjs(asp, "positive") if " " not in x and x not in NON_GRADABLE] or ["good"])
        return r.choice(pats).format(n=noun, c=copula(dom, plural, True, r), cp=cop, s=r.choice(STRONG),
                                     a=a, m=r.choice(["okay", "adequate", "acceptable", "passable", "decent"]))

    def np(self, asp, pol):
        """A noun phrase such as 'the rude staff' (for 'despite ...', lists)."""
        adj = self.rng.choice(self.adjs(asp, pol))
        art, rest = asp[0].split(" ", 1)
        return f"{art} {adj} {rest}"

    def cons(self, dom, pol):
        return self.rng.choice(dom["pos_cons" if pol == "positive" else "neg_cons"])

    def clauses(self, dom, asps, pol):
        cs = [self.clause(dom, a, pol) for a in asps]
        if len(cs) == 1:
            return cs[0]
        return ", ".join(cs[:-1]) + " and " + cs[-1]

    # -- review families -----------------------------------------------------
    def simple(self, dom, label):
        """Clauses that all agree (negation included), with an optional verdict."""
        r = self.rng
        asps = self.aspects(dom, r.choice([1, 2, 2, 3]))
        end = r.choice([".", ".", "!"]) if label != "mixed" else "."
        sents = [cap(self.clauses(dom, asps, label)) + end]
        return self.maybe_verdict(sents, dom, label, 0.25, absolute=True)

    def contrast(self, dom, label):
        """Opposite opinion first, then an emphatic deciding clause.

        The tail after the deciding clause is usually polarity-neutral ("and
        that's what I'll remember"), so the label hinges on clause order.
        """
        r = self.rng
        a, b = self.aspects(dom, 2)
        first = self.clause(dom, a, flip(label))
        last = self.clause(dom, b, label, strong=True)
        conn = r.choice(CONNECTORS + [". Still, ", ". Ultimately, though, ", ", but in the end "])
        sent = cap(first) + conn + last
        x = r.random()
        if x < 0.6:
            return self.maybe_verdict([sent + ", " + r.choice(ANCHORS) + "."], dom, label, 0.2)
        if x < 0.85:
            return self.maybe_verdict([sent + " and " + self.cons(dom, label) + "."], dom, label, 0.2)
        return [sent + r.choice([".", "!"]), self.verdict(dom, label, absolute=False)]

    def concessive(self, dom, label):
        """'Although <discounted>, <main>' - the main clause decides."""
        r = self.rng
        a, b = self.aspects(dom, 2)
        opp, main = flip(label), self.clause(dom, b, label)
        style = r.randrange(4)
        if style == 0:
            s = [f"{r.choice(['Although', 'Even though', 'While'])} {self.clause(dom, a, opp)}, {main}."]
        elif style == 1:
            s = [f"{cap(main)}, {r.choice(['even though', 'although', 'despite the fact that'])} {self.clause(dom, a, opp)}."]
        elif style == 2:
            s = [f"{r.choice(['Despite', 'In spite of'])} {self.np(a, opp)}, {main}."]
        else:
            s = [f"{cap(main)}, {r.choice(['despite', 'in spite of'])} {self.np(a, opp)}."]
        return self.maybe_verdict(s, dom, label, 0.2)

    def pros_cons(self, dom, label):
        """Pros and cons listed; for polar labels a verdict decides."""
        r = self.rng
        a, b, c = self.aspects(dom, 3)
        if label == "mixed":
            p, n = (a,), (b,)
        elif label == "positive":
            p, n = (a, b), (c,)
        else:
            p, n = (a,), (b, c)
        pros = [self.np(x, "positive") for x in p]
        cons = [self.np(x, "negative") for x in n]
        if r.random() < 0.5:
            s = [f"Pros: {', '.join(pros)}. Cons: {', '.join(cons)}."]
        else:
            s = [f"The good: {' and '.join(pros)}. The bad: {' and '.join(cons)}."]
        return self.maybe_verdict(s, dom, label, 0.4 if label == "mixed" else 1.0)

    def balanced(self, dom, label):
        """Mixed: a pro and a con weighed against each other, neither winning."""
        r = self.rng
        a, b = self.aspects(dom, 2)
        one, two = self.clause(dom, a, "positive"), self.clause(dom, b, "negative")
        if r.random() < 0.5:
            one, two = two, one
        if r.random() < 0.1:
            sent = "Some things were good and some were not: " + one + ", but " + two
        else:
            sent = cap(one) + r.choice(CONNECTORS + [", whereas ", " and "]) + two
        x = r.random()
        if x < 0.35:
            sent += ", " + r.choice(MIX_ANCHORS)
        elif x < 0.55:
            sent += r.choice([", so it evens out", ", so I'm torn", ", so it's a wash"])
        return self.maybe_verdict([sent + "."], dom, label, 0.25)

    def expectation(self, dom, label):
        """Expectations set up one way, the outcome decides."""
        r = self.rng
        a, b = self.aspects(dom, 2)
        item = r.choice(dom["items"])
        high = r.choice([f"I expected great things from {item}", "After all the glowing reviews I expected a lot",
                         f"Everyone told me {item} was excellent", "I really wanted to love it"])
        lowx = r.choice(["I expected the worst", "I had low expectations", "After the terrible reviews I was worried",
                         "I was ready to be disappointed"])
        if label == "negative":
            s = [high + r.choice([", but ", ", yet "]) + self.clause(dom, a, "negative") + "."
                 if r.random() < 0.6 else lowx + r.choice([", and sure enough ", ", and rightly so: "])
                 + self.clause(dom, a, "negative") + "."]
        elif label == "positive":
            s = [lowx + r.choice([", but ", ", yet "]) + self.clause(dom, a, "positive") + "."
                 if r.random() < 0.6 else high + r.choice([", and sure enough ", ", and rightly so: "])
                 + self.clause(dom, a, "positive") + "."]
        else:
            s = [r.choice([high + ", but it was merely okay: ", lowx + ", and it turned out fine, no more: ",
                           "It was about what I expected: "])
                 + self.clause(dom, a, "positive") + ", but " + self.clause(dom, b, "negative") + "."]
        return self.maybe_verdict(s, dom, label, 0.2)

    def ironic(self, dom, label):
        """Sarcasm (negative) and back-handed praise (positive)."""
        r = self.rng
        a = self.aspects(dom, 1)[0]
        if label == "negative":
            c = self.clause(dom, a, "negative", negated=False)
            s = [r.choice([f"Oh great, {c}.", f"Wonderful. {cap(c)}. Just wonderful.",
                           f"Just what I wanted: {c}.", f"Five stars for creativity, I suppose: {c}.",
                           f"Brilliant, {c}. Really brilliant.", f"Love how {c}. Truly, love it."])]
        else:
            c = self.clause(dom, a, "positive")
            s = [r.choice([f"My only complaint is that I didn't find {r.choice(dom['items'])} sooner; {c}.",
                           f"I went in looking for something to complain about, but {c}.",
                           f"I hate to admit it, but {c}.",
                           f"Annoyingly, {c}, so I can't complain about anything.",
                           f"I tried hard to find a flaw, but {c}."])]
        return self.maybe_verdict(s, dom, label, 0.2)

    def verdict_only(self, dom, label):
        """Context sentence plus a (often negated) verdict."""
        r = self.rng
        s = [r.choice(dom["context"]), self.verdict(dom, label)]
        return self.maybe_verdict(s, dom, label, 0.3, absolute=True)

    FAMILIES = {
        "positive": [("simple", 3), ("contrast", 4), ("concessive", 3), ("pros_cons", 1),
                     ("expectation", 1), ("ironic", 1), ("verdict_only", 1)],
        "negative": [("simple", 3), ("contrast", 4), ("concessive", 3), ("pros_cons", 1),
                     ("expectation", 1), ("ironic", 1), ("verdict_only", 1)],
        "mixed": [("simple", 3), ("balanced", 7), ("pros_cons", 1), ("expectation", 1), ("verdict_only", 1)],
    }

    def review(self, label: str) -> str:
        r = self.rng
        dom = DOMAINS[r.choice(list(DOMAINS))]
        names = [n for n, _ in self.FAMILIES[label]]
        weights = [w for _, w in self.FAMILIES[label]]
        fam = r.choices(names, weights)[0]
        sents = getattr(self, fam)(dom, label)
        x = r.random()
        if fam != "verdict_only" and x < 0.2:
            sents.insert(0, r.choice(dom["context"]))
        elif x < 0.35 and fam not in ("pros_cons", "ironic", "verdict_only") and not sents[0].startswith("I "):
            sents[0] = r.choice(OPENERS) + " " + low(sents[0])
        return " ".join(sents)


# ---------------------------------------------------------------------------
# Dataset assembly
# ---------------------------------------------------------------------------

def generate(seed: int = SEED) -> tuple[list[dict], list[dict]]:
    """Return ``(train, test)`` lists of ``{"text", "label"}`` records.

    Texts are unique across the whole dataset (so no text is in both splits),
    between MIN_WORDS and MAX_WORDS words long, and each label gets exactly
    N_TRAIN_PER_LABEL train and N_TEST_PER_LABEL test rows.
    """
    rng = random.Random(seed)
    gen = Gen(rng)
    need = N_TRAIN_PER_LABEL + N_TEST_PER_LABEL
    seen: dict[str, str] = {}  # insertion-ordered; never iterate a set
    pools: dict[str, list[str]] = {lab: [] for lab in LABELS}
    attempts = 0
    while any(len(p) < need for p in pools.values()):
        attempts += 1
        if attempts > 200 * need:
            raise RuntimeError("grammar too small to produce enough unique reviews")
        for lab in LABELS:
            if len(pools[lab]) >= need:
                continue
            text = gen.review(lab)
            if text in seen or not (MIN_WORDS <= len(text.split()) <= MAX_WORDS):
                continue
            assert text.isascii(), text
            seen[text] = lab
            pools[lab].append(text)
    train, test = [], []
    for lab in LABELS:
        texts = pools[lab]
        rng.shuffle(texts)
        test += [{"text": t, "label": lab} for t in texts[:N_TEST_PER_LABEL]]
        train += [{"text": t, "label": lab} for t in texts[N_TEST_PER_LABEL:need]]
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def main(out_dir: Path = OUT_DIR, seed: int = SEED) -> None:
    train, test = generate(seed)
    write_splits(out_dir, {"train": train, "test": test}, lambda recs: f"{len(recs)} rows {dict((lab, sum(r['label'] == lab for r in recs)) for lab in LABELS)}")


if __name__ == "__main__":
    main()
