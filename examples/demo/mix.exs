defmodule Demo.MixProject do
  use Mix.Project

  def project do
    [app: :demo, version: "0.1.0", elixir: "~> 1.14", deps: []]
  end

  def application do
    [mod: {Demo.Application, []}, extra_applications: [:logger]]
  end
end
