"""A product's category from its description, for the Online Retail import (docs/online-retail.md).

The file has no categories; keywords of the description decide, in three passes: every keyword of
the first rule (seasonal goods are "christmas" whatever they are); then the multi-word keywords of
the other rules, in rule order (a phrase is more specific: "HOT WATER BOTTLE" is home decor although
"BOTTLE" is kitchen); then their single words, in rule order, so specific kinds (bags, jewellery,
candles) come before the broad kitchen and home groups. A keyword matches whole words with an
optional plural "S" ("BAG" matches "JUMBO BAGS", not "BAGUETTE"). No match or no description: "other".
"""

from __future__ import annotations

import re

import polars as pl

OTHER_CATEGORY = "other"
CATEGORY_RULES: tuple[tuple[str, str], ...] = (
    (
        "christmas",
        "CHRISTMAS, XMAS, ADVENT, SANTA, REINDEER, SNOWFLAKE, SNOWMAN, NATIVITY, BAUBLE, "
        "JINGLE BELL, ELF",
    ),
    (
        "bags",
        "BAG, HANDBAG, SHOPPER, TOTE, PURSE, WALLET, RUCKSACK, BACKPACK, SATCHEL, WASHBAG, HOLDALL",
    ),
    (
        "jewellery & accessories",
        "NECKLACE, NECKL, BRACELET, BRACLET, BANGLE, EARRING, RING, PENDANT, BROOCH, CHARM, BEAD, "
        "DIAMANTE, JEWELLERY, CHOKER, LARIAT, TIARA, HAIR, HAIRCLIP, HAIRBAND, HAIR CLIP, SCARF, "
        "UMBRELLA, PARASOL, KEYRING, KEY RING, KEY FOB, KEY-CHAIN, SUNGLASSES, HAT, GLOVE, MITTEN, "
        "LUGGAGE TAG, PASSPORT COVER, COMPACT MIRROR, LIP GLOSS, HAND WARMER, PONCHO, RAIN MAC",
    ),
    (
        "candles & lights",
        "CANDLE, CANDLEHOLDER, CANDLESTICK, CANDLEPOT, CANDLESTAND, T-LIGHT, TLIGHT, TEA LIGHT, "
        "TEALIGHT, LANTERN, LAMP, LAMPSHADE, LIGHT, NIGHTLIGHT, VOTIVE, INCENSE, OIL BURNER, "
        "FRAGRANCE OIL, TORCH, CHANDELIER, DISCO BALL",
    ),
    (
        "toys & games",
        "TOY, GAME, JIGSAW, PUZZLE, DOLL, TEDDY, PLAYING CARD, DOMINO, DOMINOE, SKITTLE, "
        "SKIPPING ROPE, SPINNING TOP, MARBLE, BUBBLE, BALLOON, KNITTING NANCY, PUPPET, SOLDIER, "
        "FELTCRAFT, DRAWING SLATE, MAGIC DRAWING, COLOURING, CRAYON, PAINT SET, PAINT YOUR OWN, "
        "HELICOPTER, RACING CAR, YO-YO, KITE, DICE, CHESS, BINGO, SNAKE, BLOCK, BUILDING BLOCK, "
        "TRAIN, LUDO, NAUGHTS & CROSSES, FLYING DISC, MODELLING CLAY, ROCKING HORSE, PLAYHOUSE, "
        "TATTOO, FARM ANIMAL, CREEPY CRAWLIE, INFLATABLE, SPORTING FUN, SNAP CARD",
    ),
    (
        "stationery & cards",
        "CARD, NOTEBOOK, NOTEPAD, NOTE BOOK, NOTELET, JOURNAL, DIARY, PEN, PENCIL, ERASER, RUBBER, "
        "RULER, SHARPENER, STICKER, TAPE, WRAP, WRAPPING, ENVELOPE, CALENDAR, SKETCHBOOK, MEMO, "
        "MEMOBOARD, GIFT TAG, TAG, RIBBON, STAMP, ORIGAMI, CHALK, PHOTO ALBUM, ADDRESS BOOK, "
        "PAPER CHAIN, POSTCARD, BOOKMARK, TISSUE PAPER, CRAFT, STATIONERY, WRITING SET, SCISSOR, "
        "HOLE PUNCH, PAPERWEIGHT, EXERCISE BOOK, SCRAP BOOK, POCKET BOOK, INVITE, BADGE, "
        "CALCULATOR, IRON ON PATCHE, SEWING KIT, NEEDLE SET",
    ),
    (
        "kitchen & dining",
        "MUG, CUP, TEACUP, SAUCER, PLATE, BOWL, DISH, JUG, TEAPOT, TEA SET, TEA TOWEL, TEA COSY, "
        "TEA FOR ONE, TEA CADDY, TEA GLASS, COFFEE, CUTLERY, SPOON, FORK, KNIFE, CHOPSTICK, TRAY, "
        "NAPKIN, PLACEMAT, COASTER, CAKE, CAKESTAND, BAKING, APRON, OVEN, KITCHEN, LUNCH BOX, "
        "LUNCHBOX, JAM, JAR, BEAKER, TUMBLER, GLASSE, APERITIF GLASS, MILKSHAKE GLASS, CHALICE, "
        "PAN, FRYING, SNACK, BREAKFAST, DINER, PANTRY, BISCUIT, CHOPPING BOARD, RECIPE, EGG CUP, "
        "STRAW, DOILY, DOILIE, MEASURING, SUGAR, MILK, BREAD, TOAST, TOASTRACK, CONTAINER, FOOD, "
        "BOTTLE, FLASK, PICNIC, SCALE, TIN, DRINK, WINE, CHAMPAGNE, GRATER, SIEVE, STRAINER, "
        "SQUEEZER, BUTTER, COOKIE CUTTER, PLATTER, FRUITBOWL, TABLECLOTH, TABLE CLOTH, "
        "PETIT FOUR CASE, ICE LOLLY, LOLLY MAKER, SALT AND PEPPER, COOKING SET",
    ),
    (
        "garden",
        "GARDEN, GARDENER, PLANT, PLANTER, PLANT POT, FLOWER POT, FLOWERPOT, POT, WATERING CAN, "
        "HERB, SEED, BIRD FEEDER, FEEDER, BIRDHOUSE, BIRD HOUSE, BIRD TABLE, NESTING BOX, "
        "WHEELBARROW, TROWEL, GNOME, SHED, GREENHOUSE, PEG, WINDMILL, PINWHEEL, HAMMOCK, CLOCHE, "
        "WINDSOCK, KNEELING MAT, KNEELING PAD, HERB GARDEN, BEACH SPADE, TOADSTOOL, MUSHROOM",
    ),
    (
        "home decor",
        "DECORATION, DECORATIVE, CUSHION, FRAME, PHOTOFRAME, MIRROR, CLOCK, SIGN, DOORSIGN, "
        "PLAQUE, DOORMAT, DOORSTOP, DOOR, HOOK, HANGER, GARLAND, BUNTING, WREATH, VASE, WALL, "
        "TILE, ORNAMENT, CABINET, DRAWER, KNOB, CURTAIN, QUILT, THROW, BLANKET, BASKET, STORAGE, "
        "BOX, BOXE, HOT WATER BOTTLE, TOWEL, BATHROOM, BATH SPONGE, FLANNEL, SHOWER CAP, TISSUE, "
        "SOAP, RACK, SHELF, PICTURE, PHOTO, ART, CHALKBOARD, BLACKBOARD, HOLDER, MOBILE, HEART, "
        "STAR, TRINKET, FLOWER, FEATHER, BIRD, BUTTERFLY, ENAMEL, MAGNET, CHIME, BELL, LANDMARK, "
        "SHELL, EGG, EASTER, HANGING, STOOL, CHAIR, POUFFE, TABLE, FLAG, ROSETTE, LETTER, BIN, "
        "FILLER PAD, ASHTRAY, MAT, CHEST, WALL CLOCK, BATHROOM BOTTLE",
    ),
)


def category_of(description: pl.Expr) -> pl.Expr:
    """A product's category from its description by CATEGORY_RULES; "other" when nothing matches."""
    (first, first_keywords), *others = (
        (name, [k.strip() for k in keywords.split(",")]) for name, keywords in CATEGORY_RULES
    )
    passes = [
        (first, first_keywords),
        *((name, [k for k in keywords if " " in k]) for name, keywords in others),
        *((name, [k for k in keywords if " " not in k]) for name, keywords in others),
    ]
    text = description.str.to_uppercase()
    category = pl.lit(OTHER_CATEGORY)
    # Built from the last pass to the first, so the first pass that matches is the outermost.
    for name, keywords in reversed(passes):
        if keywords:
            pattern = r"\b(?:" + "|".join(map(re.escape, keywords)) + r")S?\b"
            matches = text.str.contains(pattern).fill_null(False)
            category = pl.when(matches).then(pl.lit(name)).otherwise(category)
    return category
