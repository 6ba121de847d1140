"""One module per trigger: each turns its event into callbacks for the pipeline, and the pipeline's
results into the answer that trigger expects. May use everything but app; only app imports them."""
