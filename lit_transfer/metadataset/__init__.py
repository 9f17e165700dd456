"""The meta-dataset: synthetic QA task families, the world they ask about, and (later) runs over them."""
