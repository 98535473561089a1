"""Training: overfit WDSR models to the chunks of a RUN (stdo, jstdo, awdnn, nas, cafm)."""
