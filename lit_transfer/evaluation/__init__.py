"""Evaluation, on top of the product: how good the surrogates are on tasks they never saw
(``surrogate_quality``, against ``surrogate_baselines``), how the tuning methods compare when one task or one whole
family is held out (``tuning``, replayed, with ``stats``). Nothing in the product imports from here."""
